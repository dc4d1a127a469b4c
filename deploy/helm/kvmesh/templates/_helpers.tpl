{{/* Names, labels and the shared environment of the kvmesh processes. */}}

{{- define "kvmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kvmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kvmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kvmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kvmesh
{{- end -}}

{{/* selector labels of one component: include "kvmesh.selector" (list . "kv-service") */}}
{{- define "kvmesh.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "kvmesh.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kvmesh.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* the headless Service Envoy resolves (STRICT_DNS: every ready replica's address is a host) */}}
{{- define "kvmesh.kvServiceHeadless" -}}
{{- printf "%s-kv-service" (include "kvmesh.fullname" .) -}}
{{- end -}}

{{- define "kvmesh.authSecret" -}}
{{- default (printf "%s-auth-jwks" (include "kvmesh.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "kvmesh.redisSecret" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.create -}}
{{- printf "%s-redis-auth" (include "kvmesh.fullname" .) -}}
{{- else -}}
{{- fail "redis.existingSecret (the Secret with the external Redis's password) is required when redis.create is false" -}}
{{- end -}}
{{- end -}}

{{/* connection settings of the stores: the operators' resources, or the external ones named in values */}}
{{- define "kvmesh.pg" -}}
{{- $f := include "kvmesh.fullname" . -}}
{{- if .Values.postgresql.create -}}
{{- dict "host" (printf "%s-pg-rw" $f) "port" 5432 "database" "kvmesh" "secret" (printf "%s-pg-app" $f) "usernameKey" "username" "passwordKey" "password" | toJson -}}
{{- else -}}
{{- $e := .Values.postgresql.external -}}
{{- dict "host" (required "postgresql.external.host is required when postgresql.create is false" $e.host) "port" $e.port "database" $e.database "secret" (required "postgresql.external.secret is required when postgresql.create is false" $e.secret) "usernameKey" $e.usernameKey "passwordKey" $e.passwordKey | toJson -}}
{{- end -}}
{{- end -}}

{{- define "kvmesh.amqp" -}}
{{- $f := include "kvmesh.fullname" . -}}
{{- if .Values.rabbitmq.create -}}
{{- dict "host" (printf "%s-rabbitmq" $f) "port" 5672 "vhost" "/" "secret" (printf "%s-rabbitmq-default-user" $f) "usernameKey" "username" "passwordKey" "password" | toJson -}}
{{- else -}}
{{- $e := .Values.rabbitmq.external -}}
{{- dict "host" (required "rabbitmq.external.host is required when rabbitmq.create is false" $e.host) "port" $e.port "vhost" $e.vhost "secret" (required "rabbitmq.external.secret is required when rabbitmq.create is false" $e.secret) "usernameKey" $e.usernameKey "passwordKey" $e.passwordKey | toJson -}}
{{- end -}}
{{- end -}}

{{- define "kvmesh.redisHost" -}}
{{- if .Values.redis.create -}}
{{- printf "%s-redis" (include "kvmesh.fullname" .) -}}
{{- else -}}
{{- required "redis.external.host is required when redis.create is false" .Values.redis.external.host -}}
{{- end -}}
{{- end -}}

{{/*
The stores' addresses and credentials, as docker-compose.yml's x-kvmesh-env. Passwords come from the operators'
Secrets by secretKeyRef; the URIs that carry them are composed by Kubernetes' $(VAR) expansion, so no password is in
a manifest or a ConfigMap. (The operators' generated passwords are URI-safe: base64url for RabbitMQ, alphanumeric for
CloudNativePG, and the chart's Redis password is alphanumeric.)
*/}}
{{- define "kvmesh.storeEnv" -}}
{{- $pg := include "kvmesh.pg" . | fromJson -}}
{{- $amqp := include "kvmesh.amqp" . | fromJson -}}
- name: KVMESH_PG_URL
  value: {{ printf "jdbc:postgresql://%s:%d/%s" $pg.host (int $pg.port) $pg.database | quote }}
- name: KVMESH_PG_USER
  valueFrom: { secretKeyRef: { name: {{ $pg.secret | quote }}, key: {{ $pg.usernameKey | quote }} } }
- name: KVMESH_PG_PASSWORD
  valueFrom: { secretKeyRef: { name: {{ $pg.secret | quote }}, key: {{ $pg.passwordKey | quote }} } }
- name: KVMESH_REDIS_PASSWORD
  valueFrom: { secretKeyRef: { name: {{ include "kvmesh.redisSecret" . | quote }}, key: {{ .Values.redis.passwordKey | quote }} } }
- name: KVMESH_REDIS_URI
  value: {{ printf "redis://:$(KVMESH_REDIS_PASSWORD)@%s:%d" (include "kvmesh.redisHost" .) (int (ternary 6379 .Values.redis.external.port .Values.redis.create)) | quote }}
- name: KVMESH_AMQP_USER
  valueFrom: { secretKeyRef: { name: {{ $amqp.secret | quote }}, key: {{ $amqp.usernameKey | quote }} } }
- name: KVMESH_AMQP_PASSWORD
  valueFrom: { secretKeyRef: { name: {{ $amqp.secret | quote }}, key: {{ $amqp.passwordKey | quote }} } }
- name: KVMESH_AMQP_URI
  value: {{ printf "amqp://$(KVMESH_AMQP_USER):$(KVMESH_AMQP_PASSWORD)@%s:%d/%s" $amqp.host (int $amqp.port) ($amqp.vhost | urlquery) | quote }}
- name: KVMESH_PARTITIONS
  value: {{ .Values.kvmesh.partitions | int64 | quote }}
- name: KVMESH_MAX_VALUE_BYTES
  value: {{ .Values.kvmesh.maxValueBytes | int64 | quote }}
- name: KVMESH_MAX_KEY_BYTES
  value: {{ .Values.kvmesh.maxKeyBytes | int64 | quote }}
{{- include "kvmesh.extraEnv" .Values.kvmesh.extraEnv }}
{{- end -}}

{{/* pod-level settings every kvmesh pod shares; call with (list . .Values.<component>) */}}
{{- define "kvmesh.podCommon" -}}
{{- $ := index . 0 -}}
{{- $c := index . 1 -}}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* name: value pairs as env entries; whole numbers stay whole (YAML numbers arrive as float64: 1048576, not 1.048576e+06) */}}
{{- define "kvmesh.extraEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ ternary ($v | int64) $v (and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v)) | quote }}
{{- end }}
{{- end -}}
