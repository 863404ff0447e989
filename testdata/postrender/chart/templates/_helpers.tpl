{{- define "refresh-test.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end -}}

{{/* A floating image must be pulled on every start, or a rollout restart would not fetch it. */}}
{{- define "refresh-test.pullPolicy" -}}
{{- if .digest -}}IfNotPresent{{- else -}}Always{{- end -}}
{{- end -}}

{{/* An object as it is rendered: alone, or as the one item of a v1 List. */}}
{{- define "refresh-test.object" -}}
{{- if .asList -}}
apiVersion: v1
kind: List
items:
- {{- .object | nindent 2 }}
{{- else -}}
{{ .object }}
{{- end -}}
{{- end -}}
