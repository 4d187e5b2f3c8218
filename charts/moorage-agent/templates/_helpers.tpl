{{/* Objects in the release's namespace are named after the release (the Secret, the Deployment, the
Service, the ServiceAccount); cluster-scoped ones add the namespace, so two releases never clash. */}}
{{- define "moorage-agent.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moorage-agent.clusterName" -}}
{{- printf "%s-%s" .Release.Name .Release.Namespace | trunc 200 | trimSuffix "-" -}}
{{- end -}}

{{- define "moorage-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moorage-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "moorage-agent.labels" -}}
{{ include "moorage-agent.selectorLabels" . }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: moorage
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "moorage-agent.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret that holds the token, and its key. */}}
{{- define "moorage-agent.secretName" -}}
{{- .Values.config.existing_secret_name | default (include "moorage-agent.name" .) -}}
{{- end -}}

{{- define "moorage-agent.secretKey" -}}
{{- if .Values.config.existing_secret_name -}}{{ .Values.config.secret_key | default "token" }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* The ClusterRole bound to the ServiceAccount: the chart's own when rbac.rules is set. */}}
{{- define "moorage-agent.clusterRole" -}}
{{- if .Values.rbac.rules -}}{{ include "moorage-agent.clusterName" . }}{{- else -}}{{ .Values.rbac.cluster_role }}{{- end -}}
{{- end -}}

{{/* Refuse what cannot work, with the value to change. */}}
{{- define "moorage-agent.validate" -}}
{{- if and .Values.config.token .Values.config.existing_secret_name -}}
{{- fail "set config.token or config.existing_secret_name, not both" -}}
{{- end -}}
{{- if not (or .Values.config.token .Values.config.existing_secret_name) -}}
{{- fail "the agent needs its token: --set config.token=TOKEN (printed by `moorage cluster register NAME`) or config.existing_secret_name=SECRET" -}}
{{- end -}}
{{- range $name, $_ := .Values.env.vars -}}
{{- if eq $name "MOORAGE_AGENT_TOKEN" -}}
{{- fail "env.vars: the token goes in config.token or config.existing_secret_name (a Secret), never in the pod spec" -}}
{{- end -}}
{{- end -}}
{{- range .Values.extra_env -}}
{{- if and (eq .name "MOORAGE_AGENT_TOKEN") (hasKey . "value") -}}
{{- fail "extra_env: the token goes in config.token or config.existing_secret_name (a Secret), never in the pod spec" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The container's environment: the chart's variables, then env.vars, then extra_env; a later entry
of the same name replaces an earlier one in place, so every name appears once (server-side apply keys
env by name). */}}
{{- define "moorage-agent.env" -}}
{{- $entries := list
  (dict "name" "MOORAGE_SERVER" "value" .Values.config.server_url)
  (dict "name" "MOORAGE_AGENT_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" (include "moorage-agent.secretName" .) "key" (include "moorage-agent.secretKey" .))))
  (dict "name" "MOORAGE_AGENT_READ_WORKERS" "value" (toString .Values.read_worker_count))
  (dict "name" "MOORAGE_AGENT_WRITE_WORKERS" "value" (toString .Values.write_worker_count))
  (dict "name" "MOORAGE_AGENT_CONCURRENCY" "value" (toString .Values.deploy_concurrency))
  (dict "name" "MOORAGE_AGENT_HEALTH_PORT" "value" "8080")
  (dict "name" "MOORAGE_AGENT_NATS_MAX_WORKERS" "value" (toString .Values.nats_worker_max_workers))
  (dict "name" "MOORAGE_AGENT_PUBLIC_IP_REPORTING" "value" (toString .Values.public_ip.reporting_enabled))
  (dict "name" "MOORAGE_AGENT_PUBLIC_IP_LOOKUP_URL" "value" .Values.public_ip.lookup_url)
  (dict "name" "HOME" "value" "/home/moorage")
  (dict "name" "MOORAGE_AGENT_RELEASE_NAME" "value" .Release.Name)
  (dict "name" "MOORAGE_AGENT_RELEASE_NAMESPACE" "value" .Release.Namespace)
  (dict "name" "MOORAGE_AGENT_CHART_VERSION" "value" .Chart.Version)
-}}
{{- with .Values.config.ca -}}
{{- $entries = append $entries (dict "name" "MOORAGE_CA" "value" "/etc/moorage/ca/server-ca.crt") -}}
{{- end -}}
{{- with .Values.config.nats_ca -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_CA" "value" "/etc/moorage/ca/nats-ca.crt") -}}
{{- end -}}
{{- if .Values.config.insecure -}}
{{- $entries = append $entries (dict "name" "MOORAGE_AGENT_INSECURE" "value" "true") -}}
{{- end -}}
{{- if .Values.sops.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "SOPS_AGE_KEY_FILE" "value" (printf "/etc/moorage/sops/%s" .Values.sops.secret_key)) -}}
{{- end -}}
{{- range $name := keys .Values.env.vars | sortAlpha -}}
{{- $entries = append $entries (dict "name" $name "value" (get $.Values.env.vars $name)) -}}
{{- end -}}
{{- $entries = concat $entries .Values.extra_env -}}
{{- $order := list -}}
{{- $byName := dict -}}
{{- range $entries -}}
{{- if not (hasKey $byName .name) -}}{{- $order = append $order .name -}}{{- end -}}
{{- $_ := set $byName .name . -}}
{{- end -}}
{{- $env := list -}}
{{- range $order -}}{{- $env = append $env (get $byName .) -}}{{- end -}}
{{- toYaml $env -}}
{{- end -}}
