{{/* What the several-replica mode lacks, "; "-joined (empty: nothing): PostgreSQL, an external NATS,
one sealing key, no ReadWriteOnce data volume shared by two pods. Needed by replica_count > 1 and by
a canary (two servers side by side). */}}
{{- define "moorage.scaleOutMissing" -}}
{{- $missing := list -}}
{{- if not .Values.database.existing_secret_name -}}{{- $missing = append $missing "database.existing_secret_name (PostgreSQL; SQLite is one server's)" -}}{{- end -}}
{{- if not .Values.nats.existing_secret_name -}}{{- $missing = append $missing "nats.existing_secret_name (an external NATS; the embedded one lives in one pod)" -}}{{- end -}}
{{- if not .Values.sealing_key.existing_secret_name -}}{{- $missing = append $missing "sealing_key.existing_secret_name (every replica needs the same key)" -}}{{- end -}}
{{- if and .Values.persistence.enabled (not (has "ReadWriteMany" .Values.persistence.access_modes)) -}}{{- $missing = append $missing "persistence.enabled=false (or access_modes [ReadWriteMany]: two pods cannot share a ReadWriteOnce volume)" -}}{{- end -}}
{{- join "; " $missing -}}
{{- end -}}

{{/* progressiveDelivery: "true" when the server runs as an Argo Rollouts Rollout instead of a
Deployment. Checked through .Capabilities, so `helm install` on a cluster without the Rollout CRD
fails at once, and `helm template` fails unless told the CRD exists (--api-versions). A canary runs
the stable and the canary server side by side: that is the several-replica mode (PostgreSQL, an
external NATS, one sealing key, no ReadWriteOnce data volume shared by two pods). */}}
{{- define "moorage.rollout" -}}
{{- with .Values.progressiveDelivery -}}
{{- if .enabled -}}
{{- if not ($.Capabilities.APIVersions.Has "argoproj.io/v1alpha1/Rollout") -}}
{{- fail "progressiveDelivery.enabled=true renders an Argo Rollouts Rollout, but the cluster has no Rollout CRD (argoproj.io/v1alpha1/Rollout): install Argo Rollouts first (its CRDs and controller, e.g. kubectl create namespace argo-rollouts && kubectl apply -n argo-rollouts -f https://github.com/argoproj/argo-rollouts/releases/download/v1.10.1/install.yaml), or set progressiveDelivery.enabled=false. To render offline: helm template ... --api-versions argoproj.io/v1alpha1/Rollout" -}}
{{- end -}}
{{- with include "moorage.scaleOutMissing" $ -}}
{{- fail (printf "progressiveDelivery.enabled=true runs the stable and the canary server side by side, which needs the several-replica mode: set %s" .) -}}
{{- end -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Rollout's canary: the steps (default: one step with a manual pause), no traffic router (the
canary's share is its share of the pods), so the Service and its selector stay as they are. */}}
{{- define "moorage.canary" -}}
{{- with .Values.progressiveDelivery -}}
maxSurge: {{ .maxSurge }}
maxUnavailable: {{ .maxUnavailable }}
steps:
  {{- toYaml .canarySteps | nindent 2 }}
{{- end -}}
{{- end -}}
