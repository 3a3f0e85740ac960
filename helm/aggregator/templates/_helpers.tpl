{{/* Names and labels. */}}
{{- define "aggregator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aggregator.fullname" -}}
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

{{- define "aggregator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aggregator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "aggregator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "aggregator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "aggregator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "aggregator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aggregator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Scale-out: more than one receiver shard. */}}
{{- define "aggregator.scaled" -}}
{{- if gt (int .Values.shards) 1 }}true{{ end -}}
{{- end -}}

{{/* The DNS name of shard $i's own Service. Args: (list $ $i). */}}
{{- define "aggregator.shardHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s-shard-%d.%s.svc" (include "aggregator.fullname" $root) (int (index . 1)) $root.Release.Namespace -}}
{{- end -}}

{{/* Push and pull entries of .Values.clusters (as JSON lists, for fromJsonArray). */}}
{{- define "aggregator.pushClusters" -}}
{{- $out := list -}}
{{- range .Values.clusters }}{{ if not .url }}{{ $out = append $out . }}{{ end }}{{ end -}}
{{- toJson $out -}}
{{- end -}}
{{- define "aggregator.pullClusters" -}}
{{- $out := list -}}
{{- range .Values.clusters }}{{ if .url }}{{ $out = append $out . }}{{ end }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Checks the schema cannot express; `fail` names the value and the reason. */}}
{{- define "aggregator.validate" -}}
{{- $shards := int .Values.shards -}}
{{- $pushes := include "aggregator.pushClusters" . | fromJsonArray -}}
{{- if and (gt $shards 1) (ne .Values.storage.objectStore.type "s3") -}}
{{- fail (printf "storage.objectStore.type: shards: %d needs one shared object store (type s3), got %q" $shards .Values.storage.objectStore.type) -}}
{{- end -}}
{{- $owned := dict -}}
{{- range $i, $c := $pushes -}}
{{- if gt $shards 1 -}}
{{- if not (hasKey $c "shard") -}}
{{- fail (printf "clusters[%s]: push cluster %q needs `shard` (0..%d) when shards > 1: its remote_write URL names its shard" (toString $i) $c.name (sub $shards 1)) -}}
{{- end -}}
{{- if ge (int $c.shard) $shards -}}
{{- fail (printf "clusters: push cluster %q has shard %d, but shards is %d (shards are 0..%d)" $c.name (int $c.shard) $shards (sub $shards 1)) -}}
{{- end -}}
{{- $_ := set $owned (toString (int $c.shard)) true -}}
{{- end -}}
{{- end -}}
{{- if gt $shards 1 -}}
{{- range $i := until $shards -}}
{{- if not (hasKey $owned (toString $i)) -}}
{{- fail (printf "clusters: shard %d owns no push cluster (set `shard: %d` on at least one)" $i $i) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A camelCase map as the service's snake_case keys. */}}
{{- define "aggregator.snake" -}}
{{- $out := dict -}}
{{- range $k, $v := . }}{{ $_ := set $out ($k | snakecase) $v }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
The service's config file for one pod. Args: dict root, role (single | shard | query),
shard (index, for role shard). Paths are relative to the config's folder
(/etc/aggregator/config): secrets are mounted at ../tokens and ../secrets, rule files at
../rules/<configmap>/.
*/}}
{{- define "aggregator.config" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $role := .role -}}
{{- $cfg := dict "listen" (printf ":%d" (int $v.service.port)) "data_dir" "/var/lib/aggregator" -}}
{{- $clusters := list -}}
{{- if ne $role "query" -}}
{{- range (include "aggregator.pushClusters" $root | fromJsonArray) -}}
{{- if or (ne $role "shard") (eq (int .shard) (int $.shard)) -}}
{{- $c := dict "name" .name "token_file" (printf "../tokens/%s" .name) -}}
{{- if hasKey . "ingestRate" }}{{ $_ := set $c "ingest_rate" .ingestRate }}{{ end -}}
{{- if hasKey . "ingestBurst" }}{{ $_ := set $c "ingest_burst" .ingestBurst }}{{ end -}}
{{- $clusters = append $clusters $c -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if ne $role "shard" -}}
{{- range $i, $p := (include "aggregator.pullClusters" $root | fromJsonArray) -}}
{{- $c := dict "name" $p.name "url" $p.url -}}
{{- if $p.timeout }}{{ $_ := set $c "timeout" $p.timeout }}{{ end -}}
{{- if $p.healthCheckInterval }}{{ $_ := set $c "health_check_interval" $p.healthCheckInterval }}{{ end -}}
{{- if $p.bearerTokenSecret }}{{ $_ := set $c "bearer_token_file" (printf "../secrets/pull-%d-bearer-token" (int $i)) }}{{ end -}}
{{- if $p.basicAuth -}}
{{- $_ := set $c "basic_auth" (dict "username" $p.basicAuth.username "password_file" (printf "../secrets/pull-%d-password" (int $i))) -}}
{{- end -}}
{{- if $p.tls -}}
{{- $tls := dict "insecure_skip_verify" (default false $p.tls.insecureSkipVerify) -}}
{{- if $p.tls.caSecret }}{{ $_ := set $tls "ca_file" (printf "../secrets/pull-%d-ca.crt" (int $i)) }}{{ end -}}
{{- $_ := set $c "tls" $tls -}}
{{- end -}}
{{- if $p.externalLabelsDrop }}{{ $_ := set $c "external_labels_drop" $p.externalLabelsDrop }}{{ end -}}
{{- if $p.keepClusterLabel }}{{ $_ := set $c "keep_cluster_label" true }}{{ end -}}
{{- $clusters = append $clusters $c -}}
{{- end -}}
{{- end -}}
{{- $basePrefix := trimAll "/" (default "" $v.storage.objectStore.prefix) -}}
{{- $shardPrefixes := list -}}
{{- if eq $role "query" -}}
{{- range $i := until (int $v.shards) -}}
{{- $shardPrefix := trimPrefix "/" (printf "%s/shard-%d" $basePrefix $i) -}}
{{- $shardPrefixes = append $shardPrefixes $shardPrefix -}}
{{- /* its blocks are read from the bucket; the shard is asked only for what is newer */ -}}
{{- $clusters = append $clusters (dict "name" (printf "%s-shard-%d" (include "aggregator.fullname" $root) $i) "url" (printf "http://%s:%d" (include "aggregator.shardHost" (list $root $i)) (int $v.service.port)) "keep_cluster_label" true "health_check_interval" "5s" "object_store_prefix" $shardPrefix) -}}
{{- end -}}
{{- end -}}
{{- if $clusters }}{{ $_ := set $cfg "clusters" $clusters }}{{ end -}}
{{- with $v.limits }}{{ $_ := set $cfg "limits" (include "aggregator.snake" . | fromJson) }}{{ end -}}
{{- $os := $v.storage.objectStore -}}
{{- $store := dict "type" $os.type -}}
{{- $prefix := $basePrefix -}}
{{- if eq $role "shard" }}{{ $prefix = trimPrefix "/" (printf "%s/shard-%d" $prefix (int .shard)) }}{{ end -}}
{{- if eq $role "query" }}{{ $prefix = trimPrefix "/" (printf "%s/query" $prefix) }}{{ end -}}
{{- if eq $os.type "s3" -}}
{{- $_ := set $store "bucket" $os.bucket -}}
{{- if $prefix }}{{ $_ := set $store "prefix" $prefix }}{{ end -}}
{{- if $os.endpoint }}{{ $_ := set $store "endpoint" $os.endpoint }}{{ end -}}
{{- if $os.region }}{{ $_ := set $store "region" $os.region }}{{ end -}}
{{- if $shardPrefixes -}}
{{- $_ := set $store "read_prefixes" $shardPrefixes -}}
{{- $_ := set $store "read_relist_interval" $v.queryTier.relistInterval -}}
{{- end -}}
{{- end -}}
{{- $s := $v.storage -}}
{{- $_ := set $cfg "storage" (dict "retention" $s.retention "block_duration" $s.blockDuration "late_window" $s.lateWindow "object_store_retention" $s.objectStoreRetention "wal_fsync" $s.walFsync "block_cache_size" $s.blockCacheSize "object_store" $store) -}}
{{- with $v.query -}}
{{- $query := include "aggregator.snake" . | fromJson -}}
{{- /* the workspace label is added once, on the query tier (a shard's remote read would add it too) */ -}}
{{- if eq $role "shard" }}{{ $_ := unset $query "workspace_label" }}{{ end -}}
{{- if $query }}{{ $_ := set $cfg "query" $query }}{{ end -}}
{{- end -}}
{{- if ne $role "shard" -}}
{{- if or $v.rules.groups $v.rules.existingConfigMaps -}}
{{- $_ := set $cfg "rules" (dict "files" (list "../rules/*/*") "evaluation_interval" $v.rules.evaluationInterval) -}}
{{- end -}}
{{- $a := $v.alerting -}}
{{- $alerting := dict -}}
{{- if $a.externalUrl }}{{ $_ := set $alerting "external_url" $a.externalUrl }}{{ end -}}
{{- if $a.externalLabels }}{{ $_ := set $alerting "external_labels" $a.externalLabels }}{{ end -}}
{{- if $a.alertmanagers -}}
{{- $ams := list -}}
{{- range $a.alertmanagers }}{{ $ams = append $ams (include "aggregator.snake" . | fromJson) }}{{ end -}}
{{- $_ := set $alerting "alertmanagers" $ams -}}
{{- end -}}
{{- if $a.webhooks -}}
{{- $hooks := list -}}
{{- range $a.webhooks }}{{ $hooks = append $hooks (include "aggregator.snake" . | fromJson) }}{{ end -}}
{{- $_ := set $alerting "webhooks" $hooks -}}
{{- end -}}
{{- if $alerting }}{{ $_ := set $cfg "alerting" $alerting }}{{ end -}}
{{- end -}}
{{- with $v.server }}{{ $_ := set $cfg "server" (include "aggregator.snake" . | fromJson) }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Volumes every pod mounts: config, cluster secrets, rules (not on shards), tmp. */}}
{{- define "aggregator.volumes" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: config
  configMap:
    name: {{ include "aggregator.fullname" $root }}-config
- name: tmp
  emptyDir: {}
{{- $pushes := include "aggregator.pushClusters" $root | fromJsonArray }}
{{- if and (ne .role "query") $pushes }}
- name: tokens
  projected:
    sources:
    {{- /* every shard pod gets every push token (one pod template); its config names its own */}}
    {{- range $pushes }}
    - secret:
        name: {{ .tokenSecret.name }}
        items:
        - key: {{ .tokenSecret.key }}
          path: {{ .name }}
    {{- end }}
{{- end }}
{{- $pulls := include "aggregator.pullClusters" $root | fromJsonArray }}
{{- if ne .role "shard" }}
{{- $secretSources := list }}
{{- range $i, $p := $pulls }}
{{- if $p.bearerTokenSecret }}{{ $secretSources = append $secretSources (dict "secret" (dict "name" $p.bearerTokenSecret.name "items" (list (dict "key" $p.bearerTokenSecret.key "path" (printf "pull-%d-bearer-token" (int $i)))))) }}{{ end }}
{{- if and $p.basicAuth $p.basicAuth.passwordSecret }}{{ $secretSources = append $secretSources (dict "secret" (dict "name" $p.basicAuth.passwordSecret.name "items" (list (dict "key" $p.basicAuth.passwordSecret.key "path" (printf "pull-%d-password" (int $i)))))) }}{{ end }}
{{- if and $p.tls $p.tls.caSecret }}{{ $secretSources = append $secretSources (dict "secret" (dict "name" $p.tls.caSecret.name "items" (list (dict "key" $p.tls.caSecret.key "path" (printf "pull-%d-ca.crt" (int $i)))))) }}{{ end }}
{{- end }}
{{- if $secretSources }}
- name: secrets
  projected:
    sources:
      {{- toYaml $secretSources | nindent 6 }}
{{- end }}
{{- if $v.rules.groups }}
- name: rules-inline
  configMap:
    name: {{ include "aggregator.fullname" $root }}-rules
{{- end }}
{{- range $v.rules.existingConfigMaps }}
- name: rules-{{ . | trunc 50 | trimSuffix "-" }}
  configMap:
    name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "aggregator.volumeMounts" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: config
  mountPath: /etc/aggregator/config
  readOnly: true
- name: data
  mountPath: /var/lib/aggregator
- name: tmp
  mountPath: /tmp
{{- $pushes := include "aggregator.pushClusters" $root | fromJsonArray }}
{{- if and (ne .role "query") $pushes }}
- name: tokens
  mountPath: /etc/aggregator/tokens
  readOnly: true
{{- end }}
{{- if ne .role "shard" }}
{{- $pulls := include "aggregator.pullClusters" $root | fromJsonArray }}
{{- $any := false }}
{{- range $pulls }}{{ if or .bearerTokenSecret .basicAuth (and .tls .tls.caSecret) }}{{ $any = true }}{{ end }}{{ end }}
{{- if $any }}
- name: secrets
  mountPath: /etc/aggregator/secrets
  readOnly: true
{{- end }}
{{- if $v.rules.groups }}
- name: rules-inline
  mountPath: /etc/aggregator/rules/inline
  readOnly: true
{{- end }}
{{- range $v.rules.existingConfigMaps }}
- name: rules-{{ . | trunc 50 | trimSuffix "-" }}
  mountPath: /etc/aggregator/rules/{{ . }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* The service container. Args: dict root, role, configFile, resources. */}}
{{- define "aggregator.container" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: aggregator
  image: {{ include "aggregator.image" $root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    - --config
    - /etc/aggregator/config/{{ .configFile }}
  {{- if eq .role "shard" }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
  {{- end }}
  {{- if $v.storage.objectStore.existingSecret }}
  {{- if ne .role "shard" }}
  env:
  {{- end }}
    - name: AWS_ACCESS_KEY_ID
      valueFrom:
        secretKeyRef:
          name: {{ $v.storage.objectStore.existingSecret }}
          key: {{ $v.storage.objectStore.accessKeyIdKey }}
    - name: AWS_SECRET_ACCESS_KEY
      valueFrom:
        secretKeyRef:
          name: {{ $v.storage.objectStore.existingSecret }}
          key: {{ $v.storage.objectStore.secretAccessKeyKey }}
  {{- end }}
  ports:
    - name: http
      containerPort: {{ $v.service.port }}
      protocol: TCP
  startupProbe:
    # WAL replay after a crash can take minutes; liveness waits for it.
    httpGet: {path: /-/healthy, port: http}
    periodSeconds: 10
    failureThreshold: 60
  readinessProbe:
    httpGet: {path: /-/ready, port: http}
    periodSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet: {path: /-/healthy, port: http}
    periodSeconds: 15
    timeoutSeconds: 5
    failureThreshold: 4
  {{- if $v.flushOnShutdown }}
  lifecycle:
    preStop:
      exec:
        # Cut the head into blocks and upload them before SIGTERM (README: "Blocks in
        # the object store"); a failed flush still lets the pod stop: the WAL holds it all.
        command:
          - python
          - -c
          - |
            import urllib.request
            req = urllib.request.Request("http://127.0.0.1:{{ $v.service.port }}/api/v1/admin/flush", method="POST")
            try:
                urllib.request.urlopen(req, timeout={{ sub (int $v.terminationGracePeriodSeconds) 60 }}).read()
            except Exception as exc:
                print("flush before shutdown:", exc)
  {{- end }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    capabilities:
      drop: [ALL]
  volumeMounts:
    {{- include "aggregator.volumeMounts" . | nindent 4 }}
{{- end -}}

{{- define "aggregator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod spec parts shared by every workload. */}}
{{- define "aggregator.podCommon" -}}
{{- $v := .Values -}}
serviceAccountName: {{ include "aggregator.serviceAccountName" . }}
terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
securityContext:
  {{- include "aggregator.podSecurityContext" . | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
