{{/* progressiveDelivery: "true" when the agent runs as an Argo Rollouts Rollout instead of a
Deployment. Checked through .Capabilities, so `helm install` on a cluster without the Rollout CRD
fails at once, and `helm template` fails unless told the CRD exists (--api-versions). */}}
{{- define "moorage-agent.rollout" -}}
{{- if .Values.progressiveDelivery.enabled -}}
{{- if not (.Capabilities.APIVersions.Has "argoproj.io/v1alpha1/Rollout") -}}
{{- fail "progressiveDelivery.enabled=true renders an Argo Rollouts Rollout, but the cluster has no Rollout CRD (argoproj.io/v1alpha1/Rollout): install Argo Rollouts first (its CRDs and controller, e.g. kubectl create namespace argo-rollouts && kubectl apply -n argo-rollouts -f https://github.com/argoproj/argo-rollouts/releases/download/v1.10.1/install.yaml), or set progressiveDelivery.enabled=false. To render offline: helm template ... --api-versions argoproj.io/v1alpha1/Rollout" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The Rollout's canary: the steps (default: one step with a manual pause), no traffic router (the
canary's share is its share of the pods), so the Service and its selector stay as they are. */}}
{{- define "moorage-agent.canary" -}}
{{- with .Values.progressiveDelivery -}}
maxSurge: {{ .maxSurge }}
maxUnavailable: {{ .maxUnavailable }}
steps:
  {{- toYaml .canarySteps | nindent 2 }}
{{- end -}}
{{- end -}}
