{{/* The release's name, or release-chart when the release does not say podplug. */}}
{{- define "podplug.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "podplug.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "podplug.labels" -}}
{{ include "podplug.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The policy file: .Values.policy, with the mounted OCI credentials and CA named. */}}
{{- define "podplug.policy" -}}
{{- $policy := deepCopy .Values.policy -}}
{{- $oci := deepCopy (default dict (get $policy "oci")) -}}
{{- if .Values.oci.credentialsSecret -}}
{{- $_ := set $oci "credentials" "/etc/podplug/oci/credentials/config.json" -}}
{{- end -}}
{{- if .Values.oci.caConfigMap -}}
{{- $_ := set $oci "caFile" "/etc/podplug/oci/ca/ca.crt" -}}
{{- end -}}
{{- if $oci -}}
{{- $_ := set $policy "oci" $oci -}}
{{- end -}}
{{- toYaml $policy -}}
{{- end -}}
