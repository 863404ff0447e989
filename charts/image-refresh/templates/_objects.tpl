{{- /*
image-refresh.objects renders, verbatim, the file a parent chart carries with the output of
`postrender objects --config refresh.yaml`: the same bytes postrender would append for that config.
Include it with the parent's context from one of its templates:

  {{ include "image-refresh.objects" . }}

The file is image-refresh/objects.yaml in the parent chart, or .Values.imageRefreshObjects.file.
A missing file fails the render (a forgotten generation step would silently drop the refresher);
an empty one (every image pinned: postrender objects writes nothing) renders nothing.
*/ -}}
{{- define "image-refresh.objects" -}}
{{- $file := "image-refresh/objects.yaml" -}}
{{- with .Values.imageRefreshObjects -}}
{{- if .file -}}{{- $file = .file -}}{{- end -}}
{{- end -}}
{{- if not (.Files.Glob $file) -}}
{{- fail (printf "image-refresh: chart %s has no file %s; generate it with `postrender objects --config refresh.yaml > %s` (and commit it), or set imageRefreshObjects.file" .Chart.Name $file $file) -}}
{{- end -}}
{{- $objects := .Files.Get $file -}}
{{- if trim $objects -}}
{{ $objects }}
{{- end -}}
{{- end -}}
