{{/* The app.kubernetes.io/name label, and the first part of every object's name. */}}
{{- define "modelrollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: "<fullname>-operator", "<fullname>-gateway". With the release named
     "modelrollout" (docs/install.md), the names of manifests/. */}}
{{- define "modelrollout.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains (include "modelrollout.name" .) .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "modelrollout.name" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The selector of a component's pods: the labels of manifests/ (a Deployment's selector is
     immutable, so moving from `kubectl apply -k manifests/` to the chart keeps it). */}}
{{- define "modelrollout.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelrollout.name" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels: the selector's, and Helm's own. Call with (dict "root" $ "component" "x"). */}}
{{- define "modelrollout.labels" -}}
{{ include "modelrollout.selectorLabels" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "modelrollout.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The namespaces served when clusterWide is false: the list given, else the release's. */}}
{{- define "modelrollout.namespaces" -}}
{{- $namespaces := .Values.namespaces | default (list .Release.Namespace) -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{/* "--namespace" for each served namespace (nothing when cluster-wide). */}}
{{- define "modelrollout.namespaceArgs" -}}
{{- $args := list -}}
{{- if not .Values.clusterWide -}}
{{- range (include "modelrollout.namespaces" . | fromJsonArray) -}}
{{- $args = append (append $args "--namespace") . -}}
{{- end -}}
{{- end -}}
{{- toJson $args -}}
{{- end -}}

{{/* The pod-level securityContext of every pod: the Restricted Pod Security Standard. */}}
{{- define "modelrollout.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "modelrollout.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The labels of a prometheus-operator object: ours and monitoring.labels. */}}
{{- define "modelrollout.monitoringLabels" -}}
{{ include "modelrollout.labels" . }}
{{- with .root.Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
