{{- define "mirror-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mirror-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mirror-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mirror-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The proxy's pods (the bundled Redis has its own component). */}}
{{- define "mirror-proxy.proxySelector" -}}
{{ include "mirror-proxy.selectorLabels" . }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "mirror-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mirror-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mirror-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mirror-proxy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The replicas the cluster keeps at least (the HPA's minimum when it is on). */}}
{{- define "mirror-proxy.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.minReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end -}}

{{/* Checks that fail the render with a message instead of a broken release. */}}
{{- define "mirror-proxy.validate" -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail "podDisruptionBudget: give minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable) -}}
{{- fail "podDisruptionBudget: give minAvailable or maxUnavailable" -}}
{{- end -}}
{{- $min := int (include "mirror-proxy.minReplicas" .) -}}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) $min) -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below the replicas (%d): no pod could ever be evicted, and node drains would hang" (int $pdb.minAvailable) $min) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling: minReplicas is above maxReplicas" -}}
{{- end -}}
{{- if and (eq .Values.storage.source "local") (gt $min 1) -}}
{{- fail "storage.source local keeps data in one pod's emptyDir: use s3 with more than one replica" -}}
{{- end -}}
{{- range $k, $v := .Values.env -}}
{{- if regexMatch "^(AUTH_TOKENS|REDIS_URL|MIRRORS|STORAGE_AWS_ARGS|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)$" $k -}}
{{- fail (printf "env.%s: set it through the chart's own fields or an existingSecret (env goes into a ConfigMap, which is not a secret)" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* STORAGE_AWS_ARGS without keys (those come from storage.s3.existingSecret). */}}
{{- define "mirror-proxy.s3args" -}}
{{- $a := dict "region" .Values.storage.s3.region "pathStyleEndpoint" .Values.storage.s3.pathStyle -}}
{{- if .Values.storage.s3.endpoint -}}{{- $_ := set $a "endpoint" .Values.storage.s3.endpoint -}}{{- end -}}
{{- toJson $a -}}
{{- end -}}
