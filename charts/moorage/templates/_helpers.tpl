{{/* Every object is named after the release. */}}
{{- define "moorage.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moorage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moorage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "moorage.labels" -}}
{{ include "moorage.selectorLabels" . }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: moorage
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "moorage.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The embedded NATS runs when no external NATS is given. */}}
{{- define "moorage.embeddedNats" -}}
{{- if not .Values.nats.existing_secret_name -}}true{{- end -}}
{{- end -}}

{{- define "moorage.agentNatsUrl" -}}
{{- if .Values.server.agent_nats_url -}}
{{- .Values.server.agent_nats_url -}}
{{- else if include "moorage.embeddedNats" . -}}
{{- printf "tls://%s.%s.svc:%d" (include "moorage.name" .) .Release.Namespace (int .Values.service.nats_port) -}}
{{- end -}}
{{- end -}}

{{- define "moorage.validate" -}}
{{- if and .Values.database.existing_secret_name (not .Values.persistence.enabled) (not .Values.sealing_key.existing_secret_name) -}}
{{- fail "with an external database and persistence.enabled=false, set sealing_key.existing_secret_name: the key that seals the stored Git credentials would be lost at every restart" -}}
{{- end -}}
{{- end -}}

{{/* The server's environment (chart variables, then env.vars, then extra_env; one entry per name). */}}
{{- define "moorage.env" -}}
{{- $entries := list (dict "name" "HOME" "value" "/home/moorage") -}}
{{- with .Values.database.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "MOORAGE_DATABASE_URL" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.database.secret_key))) -}}
{{- end -}}
{{- with .Values.nats.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_URL" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.nats.secret_key))) -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_USER" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.nats.user_key "optional" true))) -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.nats.password_key "optional" true))) -}}
{{- if $.Values.nats.ca_key -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_CA" "value" (printf "/etc/moorage/nats-ca/%s" $.Values.nats.ca_key)) -}}
{{- end -}}
{{- else -}}
{{- /* the embedded NATS, reachable from other pods: see configmap.yaml */ -}}
{{- $entries = append $entries (dict "name" "MOORAGE_NATS_SERVER" "value" "/etc/moorage/embedded-nats/run-nats-server") -}}
{{- end -}}
{{- with include "moorage.agentNatsUrl" . -}}
{{- $entries = append $entries (dict "name" "MOORAGE_AGENT_NATS_URL" "value" .) -}}
{{- end -}}
{{- if .Values.server.tls.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "MOORAGE_TLS_CERT" "value" "/etc/moorage/tls/tls.crt") -}}
{{- $entries = append $entries (dict "name" "MOORAGE_TLS_KEY" "value" "/etc/moorage/tls/tls.key") -}}
{{- end -}}
{{- with .Values.server.public_url -}}
{{- $entries = append $entries (dict "name" "MOORAGE_PUBLIC_URL" "value" .) -}}
{{- end -}}
{{- with .Values.bootstrap_token.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "MOORAGE_BOOTSTRAP_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.bootstrap_token.secret_key))) -}}
{{- end -}}
{{- with .Values.sealing_key.existing_secret_name -}}
{{- $entries = append $entries (dict "name" "MOORAGE_SECRET_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" . "key" $.Values.sealing_key.secret_key))) -}}
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
