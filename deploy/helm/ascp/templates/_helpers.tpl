{{/*
Helpers. The chart uses only include, toYaml, indent, nindent, quote and
default among Helm's functions, with Go's own actions and comparisons, so that
the project's tests can render it without Helm.
*/}}

{{/* The chart's name: nameOverride, else the chart's. */}}
{{- define "ascp.name" -}}
{{- default .Chart.Name .Values.nameOverride }}
{{- end }}

{{/*
The objects' name: fullnameOverride; else the release's name when it equals
the chart's name; else <release>-<name>. Like ASCP's chart, except that a
release whose name merely contains the chart's name is not shortened, and
nothing is truncated to 63 characters: set fullnameOverride for those.
*/}}
{{- define "ascp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride }}
{{- else if eq .Release.Name (include "ascp.name" .) }}
{{- .Release.Name }}
{{- else }}
{{- .Release.Name }}-{{ include "ascp.name" . }}
{{- end }}
{{- end }}

{{/* The labels that select the provider's pods (as ASCP's chart: app). */}}
{{- define "ascp.selectorLabels" -}}
app: {{ include "ascp.name" . }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "ascp.labels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
app.kubernetes.io/name: {{ include "ascp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{ include "ascp.selectorLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The ServiceAccount's name: rbac.serviceAccountName, else the full name. */}}
{{- define "ascp.serviceAccountName" -}}
{{- default (include "ascp.fullname" .) .Values.rbac.serviceAccountName }}
{{- end }}

{{/* podIdentityMode eks-auth needs the node's network (IMDS). */}}
{{- define "ascp.hostNetwork" -}}
{{- if eq .Values.podIdentityMode "eks-auth" }}true{{ else }}false{{ end }}
{{- end }}

{{/* The metrics and health address: metrics.host, else loopback when the pod
     shares the node's network (eks-auth), else every address of the pod. */}}
{{- define "ascp.metricsHost" -}}
{{- if .Values.metrics.host }}{{ .Values.metrics.host }}{{ else if eq (include "ascp.hostNetwork" .) "true" }}127.0.0.1{{ else }}0.0.0.0{{ end }}
{{- end }}
