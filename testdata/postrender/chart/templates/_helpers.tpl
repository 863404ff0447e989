{{- define "refresh-test.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}

{{/* A floating image must be pulled on every start, or a rollout restart would not fetch it. */}}
{{- define "refresh-test.pullPolicy" -}}
{{- if .digest -}}IfNotPresent{{- else -}}Always{{- end -}}
{{- end -}}
