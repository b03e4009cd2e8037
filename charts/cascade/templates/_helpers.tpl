{{/* Names and labels shared by the templates. */}}
{{- define "cascade.labels" -}}
app.kubernetes.io/part-of: cascade
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "cascade.operatorSelector" -}}
app.kubernetes.io/name: cascade-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cascade.operatorImage" -}}
{{ .Values.image.operator.repository }}:{{ .Values.image.operator.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "cascade.relayImage" -}}
{{ .Values.image.relay.repository }}:{{ .Values.image.relay.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The namespaces RelayPools may live in, as a YAML list (default: the release namespace). */}}
{{- define "cascade.poolNamespaces" -}}
{{- if .Values.relayPoolNamespaces }}{{ toYaml .Values.relayPoolNamespaces }}{{ else }}{{ list .Release.Namespace | toYaml }}{{ end }}
{{- end }}
