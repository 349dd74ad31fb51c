#!/usr/bin/env bash
# Creates the git-ignored inputs of the kustomize secretGenerators in k8s/base/secrets
# with fresh random passwords, consistently: the MongoDB application users' passwords
# appear both in mongodb-root.env (used once, when MongoDB initialises its volume) and
# in the connection URIs of the consumer and of the metrics service.
#
#   k8s/make-secrets.sh           create the files that do not exist yet
#   k8s/make-secrets.sh --force   replace them (see docs/deploy.md before rotating)
#
# It also creates a random API key (192 bits) for every Kong consumer whose key file
# (k8s/base/kong/secrets/<consumer>-key-auth.env, format in the *.example next to it)
# does not exist yet, and the gateway secret (k8s/base/kong/secrets/gateway-secret.env:
# 256 bits, `token=` for the producers and `headers=` for Kong's request-transformer)
# if it does not exist yet.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/base/secrets"
force=0
[[ "${1:-}" == "--force" ]] && force=1

rand() { openssl rand -hex 24; }
host="mongodb-0.mongodb.metrics.svc.cluster.local:27017"

umask 077
for example in "$dir"/../kong/secrets/*-key-auth.env.example; do
  [[ -f "$example" ]] || continue
  target="${example%.example}"
  if [[ -f "$target" ]]; then
    echo "keeping ${target#"$dir/../"}"
  else
    printf 'key=%s\n' "$(openssl rand -hex 24)" >"$target"
    echo "wrote k8s/base/kong/secrets/$(basename "$target")"
  fi
done

gateway="$dir/../kong/secrets/gateway-secret.env"
if [[ -f "$gateway" ]]; then
  echo "keeping kong/secrets/gateway-secret.env"
else
  token="$(openssl rand -hex 32)"
  printf 'token=%s\nheaders=["X-Gateway-Token:%s"]\n' "$token" "$token" >"$gateway"
  echo "wrote k8s/base/kong/secrets/gateway-secret.env"
fi

if [[ $force -eq 0 && -f "$dir/mongodb-root.env" ]]; then
  echo "k8s/base/secrets/*.env exist; keeping them (use --force to replace)"
  exit 0
fi
root_pw="$(rand)" consumer_pw="$(rand)" metrics_pw="$(rand)"
cat >"$dir/mongodb-root.env" <<ENV
MONGO_INITDB_ROOT_USERNAME=root
MONGO_INITDB_ROOT_PASSWORD=$root_pw
PW_CONSUMER_MONGO_PASSWORD=$consumer_pw
PW_METRICS_MONGO_PASSWORD=$metrics_pw
ENV
printf 'uri=mongodb://plantwatch-consumer:%s@%s/plantwatch?authSource=admin\n' \
  "$consumer_pw" "$host" >"$dir/consumer-mongodb.env"
printf 'uri=mongodb://plantwatch-metrics:%s@%s/plantwatch?authSource=admin\n' \
  "$metrics_pw" "$host" >"$dir/metrics-mongodb.env"
echo "wrote $dir/{mongodb-root,consumer-mongodb,metrics-mongodb}.env"
