{{/*
Every helper reads values defensively (`default dict`, `get`): `helm upgrade --reuse-values`
renders this chart with the values of an older chart version, where `imageRefresh` or some
`images.*` may be missing altogether.
*/}}

{{- define "client.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, else the release name. Truncated so that
"<fullname>-jobs-manager" stays a 63-character DNS label.
*/}}
{{- define "client.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "client.jobsManager.fullname" -}}
{{- printf "%s-jobs-manager" (include "client.fullname" .) }}
{{- end }}

{{/*
Name of the RefreshConfig, and so of the CronJob, ServiceAccount, Role and RoleBinding the
post-renderer injects: at most 52 characters (the CronJob controller appends 11 to Job names).
*/}}
{{- define "client.imageRefresh.fullname" -}}
{{- printf "%s-image-refresh" (include "client.fullname" . | replace "." "-" | trunc 38 | trimSuffix "-") }}
{{- end }}

{{- define "client.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "client.labels" -}}
helm.sh/chart: {{ include "client.chart" . }}
{{ include "client.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "client.selectorLabels" -}}
app.kubernetes.io/name: {{ include "client.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: jobs-manager
{{- end }}

{{- define "client.serviceAccountName" -}}
{{- $sa := .Values.serviceAccount | default dict }}
{{- if $sa.create }}
{{- default (include "client.jobsManager.fullname" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/*
Defaults of images.*, for values that predate them; values.yaml carries the same defaults.
*/}}
{{- define "client.imageDefaults" -}}
jobsManager: {repository: docker.io/tracebloc/jobs-manager, tag: prod, action: rollout-restart}
podsMonitor: {repository: docker.io/tracebloc/pods-monitor, tag: prod, action: rollout-restart}
ingestor: {repository: ghcr.io/tracebloc/ingestor, tag: prod, action: set-env}
{{- end }}

{{/*
One image's values as JSON {repository, tag, digest, verify, action}: (list $ "ingestor") | include |
fromJson. verify is null unless set (true or false). The ingestor's action is always set-env.
*/}}
{{- define "client.imageValues" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $defaults := get (include "client.imageDefaults" $root | fromYaml) $key }}
{{- $values := get ($root.Values.images | default dict) $key | default dict }}
{{- dict
    "repository" (get $values "repository" | default $defaults.repository)
    "tag" (get $values "tag" | default $defaults.tag | toString)
    "digest" (get $values "digest" | default "")
    "verify" (get $values "verify")
    "action" (ternary $defaults.action (get $values "action" | default $defaults.action) (eq $key "ingestor"))
  | toJson }}
{{- end }}

{{/*
The image reference: repository@digest when pinned, else repository:tag.
*/}}
{{- define "client.image" -}}
{{- $img := include "client.imageValues" . | fromJson }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- end }}
{{- end }}

{{/*
A pinned image never changes, so IfNotPresent; neither does one image-refresh sets to
repository@digest (set-image). A floating rollout-restart one must be pulled on every restart, or
image-refresh's rollout restart would start the old digest again.
*/}}
{{- define "client.imagePullPolicy" -}}
{{- $img := include "client.imageValues" . | fromJson }}
{{- if or $img.digest (eq $img.action "set-image") }}IfNotPresent{{ else }}Always{{ end }}
{{- end }}

{{/*
"true" when the refresh config is rendered: imageRefresh.enabled is not false and at least one
of the three images floats. Empty otherwise.
*/}}
{{- define "client.imageRefreshEnabled" -}}
{{- $refresh := .Values.imageRefresh | default dict }}
{{- $enabled := true }}
{{- if hasKey $refresh "enabled" }}
{{- $enabled = ne (toString $refresh.enabled) "false" }}
{{- end }}
{{- $floating := false }}
{{- range $key := list "jobsManager" "podsMonitor" "ingestor" }}
{{- if not (include "client.imageValues" (list $ $key) | fromJson).digest }}
{{- $floating = true }}
{{- end }}
{{- end }}
{{- if and $enabled $floating }}true{{ end }}
{{- end }}

{{/*
The keys ConfigMap of spec.verification: "<imageRefresh fullname>-keys" (rendered from
imageRefresh.verification.publicKeys), else imageRefresh.verification.keysConfigMap (an existing
one), else empty (no signature gate). Setting both fails the render.
*/}}
{{- define "client.imageRefresh.keysConfigMap" -}}
{{- $verification := get (.Values.imageRefresh | default dict) "verification" | default dict }}
{{- $publicKeys := get $verification "publicKeys" | default dict }}
{{- $external := get $verification "keysConfigMap" | default "" }}
{{- if and $publicKeys $external }}
{{- fail (printf "imageRefresh.verification: set publicKeys (the chart renders ConfigMap %s-keys) or keysConfigMap (an existing ConfigMap), not both" (include "client.imageRefresh.fullname" .)) }}
{{- end }}
{{- if $publicKeys }}
{{- printf "%s-keys" (include "client.imageRefresh.fullname" .) }}
{{- else }}
{{- $external }}
{{- end }}
{{- end }}
