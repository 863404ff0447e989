{{- define "tl.image" -}}
{{- $repo := index . 0 }}{{- $digest := index . 1 }}{{- $tag := index . 2 -}}
{{- if $digest }}{{ $repo }}@{{ $digest }}{{ else }}{{ $repo }}:{{ $tag }}{{ end -}}
{{- end }}
{{- define "tl.proxyEnv" -}}
{{- with .Values.env.HTTP_PROXY_HOST }}
- {name: HTTP_PROXY, value: "http://{{ . }}:{{ $.Values.env.HTTP_PROXY_PORT }}"}
- {name: HTTPS_PROXY, value: "http://{{ . }}:{{ $.Values.env.HTTP_PROXY_PORT }}"}
- {name: http_proxy, value: "http://{{ . }}:{{ $.Values.env.HTTP_PROXY_PORT }}"}
- {name: https_proxy, value: "http://{{ . }}:{{ $.Values.env.HTTP_PROXY_PORT }}"}
- {name: NO_PROXY, value: "{{ $.Values.env.NO_PROXY }},10.0.0.0/8,.svc,.cluster.local"}
- {name: no_proxy, value: "{{ $.Values.env.NO_PROXY }},10.0.0.0/8,.svc,.cluster.local"}
{{- end }}
{{- end }}
