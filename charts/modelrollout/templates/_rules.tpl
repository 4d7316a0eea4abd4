{{/* The operator's rules in a served namespace (manifests/rbac/operator*.yaml say what each
     verb is for). Least privilege: no secrets, no configmaps, no wildcards. */}}
{{- define "modelrollout.operatorRules" -}}
# modeldeployments: get, list, watch; read only: the operator writes status only (GitOps-safe).
- apiGroups: [modelrollout.io]
  resources: [modeldeployments]
  verbs: [get, list, watch]
# modeldeployments/status: patch, the one merge patch per reconcile.
- apiGroups: [modelrollout.io]
  resources: [modeldeployments/status]
  verbs: [patch]
# deployments: one per model revision (cache; create; scale; delete beyond revisionHistoryLimit).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
# services: per revision, the entry and the preview Service.
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, patch, delete]
# pods: list and watch only, to see a crash-looping candidate.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# endpointslices: the cache; create, patch and delete only with replicas routing.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch, create, patch, delete]
# events: one per rollout transition, and kopf's.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# httproutes: only for spec.trafficRouting.gatewayAPI.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, create, patch]
{{- end -}}

{{/* The gateway's rules: read only (manifests/rbac/gateway.yaml). */}}
{{- define "modelrollout.gatewayRules" -}}
# modeldeployments: list and watch, to follow status.route as the operator moves traffic.
- apiGroups: [modelrollout.io]
  resources: [modeldeployments]
  verbs: [list, watch]
# endpointslices: list and watch, for the ready pod addresses of each revision Service.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
{{- end -}}
