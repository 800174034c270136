{{/* The release's name prefix of every object. */}}
{{- define "codesync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "codesync.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: codesync
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "rooms"). */}}
{{- define "codesync.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "codesync.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "codesync.secretName" -}}
{{ .Values.secrets.existingSecret | default (include "codesync.fullname" .) }}
{{- end -}}

{{/* The nine services, in SPEC order. */}}
{{- define "codesync.serviceNames" -}}
auth rooms documents presence history execution assistant notifications analytics
{{- end -}}

{{- define "codesync.databaseUrl" -}}
{{- if .Values.postgresql.enabled -}}
postgres://{{ .Values.postgresql.username }}:$(DATABASE_PASSWORD)@{{ include "codesync.fullname" . }}-postgresql:5432/{{ .Values.postgresql.database }}
{{- else -}}
{{ .Values.postgresql.externalUrl }}
{{- end -}}
{{- end -}}

{{- define "codesync.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "codesync.fullname" . }}-redis:6379
{{- else -}}
{{ .Values.redis.externalUrl }}
{{- end -}}
{{- end -}}

{{- define "codesync.kafkaBrokers" -}}
{{- if not (or .Values.kafka.enabled .Values.kafka.externalBrokers) -}}
{{- fail "kafka.enabled is false: set kafka.externalBrokers (without a broker, events would stay in each process)" -}}
{{- end -}}
{{- if .Values.kafka.enabled -}}
{{- $fullname := include "codesync.fullname" . -}}
{{- $brokers := list -}}
{{- range $index := until (int .Values.kafka.replicas) -}}
{{- $brokers = append $brokers (printf "%s-kafka-%d.%s-kafka:9092" $fullname $index $fullname) -}}
{{- end -}}
{{ join "," $brokers }}
{{- else -}}
{{ .Values.kafka.externalBrokers }}
{{- end -}}
{{- end -}}

{{/* What every CodeSync container is told: settings, endpoints, secrets. */}}
{{- define "codesync.env" -}}
{{- $root := . -}}
{{- $fullname := include "codesync.fullname" . -}}
{{- range $key, $value := .Values.config }}
- name: {{ $key }}
  value: {{ $value | quote }}
{{- end }}
- name: CODESYNC_SERVICE_KEY_FILE
  value: /etc/codesync/service/service-key
- name: CODESYNC_JWT_SIGNING_KEY_FILE
  value: /etc/codesync/jwt/jwt-signing-key
- name: CODESYNC_JWT_PUBLIC_KEY_FILE
  value: /var/lib/codesync/jwt-public-key
- name: CODESYNC_MIGRATE_ON_START
  value: {{ ternary "false" "true" (and .Values.migrations.enabled (not .Values.postgresql.enabled)) | quote }}
{{- range $name := splitList " " (include "codesync.serviceNames" .) }}
- name: CODESYNC_{{ upper $name }}_ENDPOINT
  value: {{ include "codesync.endpoint" (dict "root" $root "component" $name) | quote }}
{{- end }}
{{ include "codesync.databaseEnv" . }}
{{- with (include "codesync.redisUrl" .) }}
- name: CODESYNC_REDIS_URL
  value: {{ . | quote }}
{{- end }}
{{- with (include "codesync.kafkaBrokers" .) }}
- name: CODESYNC_KAFKA_BROKERS
  value: {{ . | quote }}
{{- end }}
- name: CODESYNC_AI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "codesync.secretName" . }}
      key: ai-api-key
      optional: true
{{- end -}}

{{/* The pod's volumes: a writable data directory and /tmp, the service key, and the token
signing key for the auth service only. (dict "root" $ "signs" bool) */}}
{{- define "codesync.volumes" -}}
- name: codesync-data
  emptyDir: {}
- name: codesync-tmp
  emptyDir: {}
- name: service-key
  secret:
    secretName: {{ include "codesync.secretName" .root }}
    defaultMode: 0440
    optional: false
    items:
      - key: service-key
        path: service-key
{{- if .signs }}
- name: jwt-signing-key
  secret:
    secretName: {{ include "codesync.secretName" .root }}
    defaultMode: 0440
    optional: false
    items:
      - key: jwt-signing-key
        path: jwt-signing-key
{{- end }}
{{- end -}}

{{- define "codesync.volumeMounts" -}}
- name: codesync-data
  mountPath: /var/lib/codesync
- name: codesync-tmp
  mountPath: /tmp
- name: service-key
  mountPath: /etc/codesync/service
  readOnly: true
{{- if .signs }}
- name: jwt-signing-key
  mountPath: /etc/codesync/jwt
  readOnly: true
{{- end }}
{{- end -}}

{{/* A checksum of what the pods read, so that a change rolls them. */}}
{{- define "codesync.checksums" -}}
checksum/config: {{ toJson .Values.config | sha256sum }}
checksum/settings: {{ toJson (list .Values.postgresql .Values.redis .Values.kafka .Values.execution) | sha256sum }}
checksum/secrets: {{ toJson .Values.secrets | sha256sum }}
{{- end -}}


{{/* Where the database is: all `codesync migrate` needs. */}}
{{- define "codesync.databaseEnv" -}}
{{- if not (or .Values.postgresql.enabled .Values.postgresql.externalUrl .Values.secrets.existingSecret) -}}
{{- fail "postgresql.enabled is false: set postgresql.externalUrl, or secrets.existingSecret with a database-url key" -}}
{{- end -}}
- name: CODESYNC_DATA_DIR
  value: /var/lib/codesync
{{- if .Values.postgresql.enabled }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "codesync.secretName" . }}
      key: postgres-password
{{- end }}
{{- if or .Values.postgresql.enabled .Values.postgresql.externalUrl }}
- name: CODESYNC_DATABASE_URL
  value: {{ include "codesync.databaseUrl" . | quote }}
{{- else }}
- name: CODESYNC_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "codesync.secretName" . }}
      key: database-url
{{- end }}
{{- end -}}

{{/* The checkov checks this chart does not meet, each with its reason (see docs/deployment.md);
`.extra` adds a workload's own. (dict "extra" (list ...)) */}}
{{- define "codesync.checkovSkips" -}}
{{- $skips := list
  "CKV_K8S_15=IfNotPresent by default: release tags are immutable; image.pullPolicy sets Always"
  "CKV_K8S_43=images are named by tag in values; pin a digest there (tag: x@sha256:...)"
  "CKV_K8S_35=settings are read from the environment; the values are redacted from logs and config output" -}}
{{- range $index, $skip := concat $skips (.extra | default list) }}
checkov.io/skip{{ add1 $index }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{/* A component's gRPC port: `grpcPort`, or with hostNetwork one of its own (the base plus its
place in the list of services). (dict "root" $ "component" NAME) */}}
{{- define "codesync.grpcPort" -}}
{{- if .root.Values.hostNetwork.enabled -}}
{{- $index := 0 -}}
{{- range $place, $name := splitList " " (include "codesync.serviceNames" .root) -}}
{{- if eq $name $.component }}{{ $index = add1 $place }}{{ end -}}
{{- end -}}
{{- add .root.Values.hostNetwork.grpcPortBase $index -}}
{{- else -}}
{{- .root.Values.grpcPort -}}
{{- end -}}
{{- end -}}

{{- define "codesync.httpPort" -}}
{{- ternary .Values.hostNetwork.httpPort .Values.httpPort .Values.hostNetwork.enabled -}}
{{- end -}}

{{/* Where the others reach a service. (dict "root" $ "component" NAME) */}}
{{- define "codesync.endpoint" -}}
{{- if .root.Values.hostNetwork.enabled -}}
http://{{ .root.Values.hostNetwork.address }}:{{ include "codesync.grpcPort" . }}
{{- else -}}
http://{{ include "codesync.fullname" .root }}-{{ .component }}:{{ .root.Values.grpcPort }}
{{- end -}}
{{- end -}}

{{/* Where a component listens, and the address it gives the other replicas. (dict "root" $ "component" NAME) */}}
{{- define "codesync.addressEnv" -}}
{{- $port := include "codesync.grpcPort" . -}}
{{- if .root.Values.hostNetwork.enabled -}}
- name: CODESYNC_HTTP_ADDR
  value: "{{ .root.Values.hostNetwork.address }}:{{ include "codesync.httpPort" .root }}"
- name: CODESYNC_GRPC_ADDR
  value: "{{ .root.Values.hostNetwork.address }}:{{ $port }}"
- name: CODESYNC_ADVERTISE_ADDR
  value: "{{ .root.Values.hostNetwork.address }}:{{ $port }}"
{{- else -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: CODESYNC_HTTP_ADDR
  value: "0.0.0.0:{{ .root.Values.httpPort }}"
- name: CODESYNC_GRPC_ADDR
  value: "0.0.0.0:{{ $port }}"
- name: CODESYNC_ADVERTISE_ADDR
  value: "$(POD_IP):{{ $port }}"
- name: CODESYNC_METRICS_ADDR
  value: "0.0.0.0:{{ .root.Values.metricsPort }}"
{{- end -}}
{{- end -}}
