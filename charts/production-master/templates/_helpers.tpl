{{/* Names and labels. */}}
{{- define "pm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pm.fullname" -}}
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

{{- define "pm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "pm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include "pm.selector" (list . "worker") */}}
{{- define "pm.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "pm.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "pm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pm.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
The pm command of a container: include "pm.command" (list . (list "serve" "--port" "8080")).
With Vault agent injection the container sources the rendered env file first; otherwise the image's
entrypoint (pm) gets the arguments.
*/}}
{{- define "pm.command" -}}
{{- $root := index . 0 -}}
{{- $args := index . 1 -}}
{{- if $root.Values.vault.agentInject.enabled }}
command: ["/bin/sh", "-c"]
args:
  - {{ printf ". /vault/secrets/pm.env && exec pm %s" (join " " $args) | quote }}
{{- else }}
args:
{{- range $args }}
  - {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Environment of a container: include "pm.env" (dict "root" . "extra" (dict "K" "v") "configMap" true).
The ConfigMap (left out by the pre-install migration hook, which runs before it exists), the Secret,
DATABASE_URL and REDIS_URL built from postgresql.* / redis.*, extraEnv, then the container's own.
*/}}
{{- define "pm.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
envFrom:
  {{- if .configMap }}
  - configMapRef:
      name: {{ include "pm.fullname" $root }}
  {{- end }}
  {{- if $v.secrets.existingSecret }}
  - secretRef:
      name: {{ $v.secrets.existingSecret }}
  {{- end }}
env:
  - name: PM_AUTO_MIGRATE
    value: "0"
{{- if $v.postgresql.host }}
  - name: PM_DB_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ required "secrets.existingSecret is required when postgresql.host is set" $v.secrets.existingSecret }}
        key: {{ $v.postgresql.passwordKey }}
  - name: DATABASE_URL
    value: {{ printf "postgresql://%s:$(PM_DB_PASSWORD)@%s:%v/%s" $v.postgresql.user $v.postgresql.host $v.postgresql.port $v.postgresql.database | quote }}
{{- end }}
{{- if $v.redis.host }}
  - name: REDIS_URL
    value: {{ printf "redis://%s:%v/%v" $v.redis.host $v.redis.port $v.redis.db | quote }}
{{- end }}
{{- range $name, $value := $v.extraEnv }}
  - name: {{ $name }}
    value: {{ $value | quote }}
{{- end }}
{{- range $name, $value := .extra }}
  - name: {{ $name }}
    value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every workload. */}}
{{- define "pm.podSpecCommon" -}}
{{- include "pm.podSpecCommonAs" (list . (include "pm.serviceAccountName" .)) }}
{{- end -}}

{{- define "pm.podSpecCommonAs" -}}
{{- $account := index . 1 -}}
{{- with index . 0 -}}
serviceAccountName: {{ $account }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Pod annotations: include "pm.podAnnotations" (list . false); the second item is true for Jobs, whose
Vault agent must only pre-populate (a sidecar that never exits would keep the Job running).
The config checksum rolls the pods when the ConfigMap changes.
*/}}
{{- define "pm.podAnnotations" -}}
{{- $root := index . 0 -}}
{{- $job := index . 1 -}}
checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- include "pm.vaultAnnotations" (list $root $job) }}
{{- with $root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "pm.vaultAnnotations" -}}
{{- $root := index . 0 -}}
{{- $vault := $root.Values.vault.agentInject -}}
{{- if $vault.enabled }}
vault.hashicorp.com/agent-inject: "true"
{{- if index . 1 }}
vault.hashicorp.com/agent-pre-populate-only: "true"
{{- end }}
vault.hashicorp.com/role: {{ $vault.role | quote }}
vault.hashicorp.com/agent-inject-secret-pm.env: {{ $vault.secretPath | quote }}
vault.hashicorp.com/agent-inject-template-pm.env: {{ $vault.template | replace "__SECRET_PATH__" $vault.secretPath | quote }}
{{- end }}
{{- end -}}

{{/* Writable scratch space under a read-only root filesystem. */}}
{{- define "pm.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: home
    mountPath: {{ .Values.config.PM_HOME | default "/var/lib/pm" }}
  {{- if or .Values.mcpConfig .Values.sourcesConfig }}
  - name: config-files
    mountPath: /etc/pm
    readOnly: true
  {{- end }}
{{- end -}}

{{- define "pm.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: home
    emptyDir: {}
  {{- if or .Values.mcpConfig .Values.sourcesConfig }}
  - name: config-files
    configMap:
      name: {{ include "pm.fullname" . }}-files
  {{- end }}
{{- end -}}
