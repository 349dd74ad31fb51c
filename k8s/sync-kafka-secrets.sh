#!/usr/bin/env bash
# Copies what the producers (namespace kong) and the metrics service (namespace metrics,
# Secret "metrics" of the KafkaUser "metrics", for its pipeline view) need from the
# Kafka cluster's namespace:
#   - Secret "producer" (key "password"), written by Strimzi's User Operator for the
#     KafkaUser "producer"; the User Operator only writes into the namespace it watches
#     (the cluster's, "kafka"), and a Pod can only reference Secrets of its own namespace;
#   - Secret "plantwatch-cluster-ca-cert" (key "ca.crt"), the public CA certificate that
#     signed the brokers' certificates.
# Idempotent: run it after the first deploy, after rotating the producer's password,
# and after Strimzi renews the cluster CA; it restarts the producers when a value changed.
set -euo pipefail
src_ns="${KAFKA_NAMESPACE:-kafka}"
dst_ns="${PRODUCER_NAMESPACE:-kong}"
metrics_ns="${METRICS_NAMESPACE:-metrics}"
changed=0

copy() { # copy SECRET KEY [NAMESPACE]
  local name="$1" key="$2" dst_ns="${3:-$dst_ns}" value current
  value="$(kubectl get secret "$name" -n "$src_ns" -o "jsonpath={.data.${key//./\\.}}")"
  [[ -n "$value" ]] || { echo "secret $src_ns/$name has no key $key yet" >&2; exit 1; }
  current="$(kubectl get secret "$name" -n "$dst_ns" -o "jsonpath={.data.${key//./\\.}}" 2>/dev/null || true)"
  [[ "$current" == "$value" ]] && { echo "$dst_ns/$name up to date"; return; }
  kubectl create secret generic "$name" -n "$dst_ns" \
    --from-file="$key=/dev/stdin" --dry-run=client -o yaml \
    < <(printf '%s' "$value" | base64 -d) |
    kubectl label --local -f - app.kubernetes.io/part-of=plantwatch \
      plantwatch.dev/copied-from="$src_ns" -o yaml |
    kubectl apply -f -
  changed=1
}

kubectl wait kafkauser/producer -n "$src_ns" --for=condition=Ready --timeout=300s
copy producer password
copy plantwatch-cluster-ca-cert ca.crt
if [[ $changed -eq 1 ]] && kubectl get deployment producer -n "$dst_ns" >/dev/null 2>&1; then
  kubectl rollout restart deployment/producer -n "$dst_ns"
fi

changed=0
kubectl wait kafkauser/metrics -n "$src_ns" --for=condition=Ready --timeout=300s
copy metrics password "$metrics_ns"
copy plantwatch-cluster-ca-cert ca.crt "$metrics_ns"
if [[ $changed -eq 1 ]] && kubectl get deployment metrics -n "$metrics_ns" >/dev/null 2>&1; then
  kubectl rollout restart deployment/metrics -n "$metrics_ns"
fi
