# shellcheck shell=bash
# Kubernetes part of ./plantwatch: tools and schemas for offline validation of k8s/
# (pw_setup_k8s) and the offline checks themselves (pw_test_k8s). No cluster is used.
#
# Everything comes from package registries and is cached under $PW_CACHE:
#   kustomize   go install sigs.k8s.io/kustomize/kustomize/v5       -> $PW_CACHE/bin
#   kubeconform go install github.com/yannh/kubeconform/cmd/kubeconform -> $PW_CACHE/bin
#   Kubernetes schemas: PyPI kubernetes-validate (wheel, schemas only)
#   Strimzi CRDs: Maven Central io.strimzi:api + io.strimzi:crd-generator
#   Kong CRDs: Go module github.com/kong/kubernetes-configuration (config/crd), or the
#              structural schemas in scripts/k8s/kong-crds.yaml when the module is
#              not obtainable
# and converted by scripts/k8s/schemas.py into $PW_CACHE/k8s/schemas.

PW_K8S_KUSTOMIZE_VERSION="v5.8.1"
PW_K8S_KUBECONFORM_VERSION="v0.8.0"
PW_K8S_VALIDATE_VERSION="1.33.0" # kubernetes-validate release; ships Kubernetes 1.33 schemas
PW_K8S_SCHEMA_VERSION="1.33.0"
PW_K8S_STRIMZI_VERSION="0.45.0"
PW_K8S_KONG_MODULE="github.com/kong/kubernetes-configuration"
PW_K8S_KONG_VERSION="v1.4.1"

declare -F pw_info >/dev/null || pw_info() { printf '[plantwatch] %s\n' "$*" >&2; }

pw_k8s_cache() { printf '%s/k8s' "${PW_CACHE:-$HOME/.cache/plantwatch}"; }

pw_k8s_python() {
  local venv="${PW_VENV:-${PW_CACHE:-$HOME/.cache/plantwatch}/venv}"
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
    printf '%s' "$venv/bin/python"
  else
    printf 'python3'
  fi
}

pw_k8s_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    printf '/usr/local/go/bin/go'
  else
    return 1
  fi
}

# pw_k8s_go_tool NAME PACKAGE VERSION: go install PACKAGE@VERSION into $PW_CACHE/bin
# unless the binary there was already built from that version.
pw_k8s_go_tool() {
  local name="$1" pkg="$2" version="$3" bin="${PW_CACHE:-$HOME/.cache/plantwatch}/bin"
  local stamp="$bin/.$name.version" go
  if [[ -x "$bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    pw_info "k8s: $name $version already in $bin"
    return 0
  fi
  go="$(pw_k8s_go)" || { pw_info "k8s: Go toolchain not found"; return 1; }
  pw_info "k8s: go install $pkg@$version -> $bin"
  mkdir -p "$bin"
  GOBIN="$bin" GOTOOLCHAIN=local "$go" install "$pkg@$version" || return 1
  printf '%s\n' "$version" >"$stamp"
}

# Kubernetes core schemas from the kubernetes-validate wheel (no install, files only).
pw_k8s_core_schemas() {
  local cache dl whl unpack src out
  cache="$(pw_k8s_cache)"
  dl="$cache/dl"
  out="$cache/schemas/v$PW_K8S_SCHEMA_VERSION-standalone-strict"
  mkdir -p "$dl"
  whl="$(ls "$dl"/kubernetes_validate-"$PW_K8S_VALIDATE_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$whl" ]]; then
    pw_info "k8s: pip download kubernetes-validate==$PW_K8S_VALIDATE_VERSION (Kubernetes JSON schemas)"
    "$(pw_k8s_python)" -m pip download --quiet --no-deps \
      "kubernetes-validate==$PW_K8S_VALIDATE_VERSION" -d "$dl" || return 1
    whl="$(ls "$dl"/kubernetes_validate-"$PW_K8S_VALIDATE_VERSION"-*.whl | head -n1)"
  fi
  unpack="$cache/kubernetes-validate-$PW_K8S_VALIDATE_VERSION"
  src="$unpack/kubernetes_validate/kubernetes-json-schema/v$PW_K8S_SCHEMA_VERSION-local-strict"
  if [[ ! -f "$src/_definitions.json" ]]; then
    rm -rf "$unpack"
    "$(pw_k8s_python)" - "$whl" "$unpack" "v$PW_K8S_SCHEMA_VERSION-local-strict/" <<'PY' || return 1
import sys, zipfile
whl, dest, marker = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    z.extractall(dest, [n for n in z.namelist() if marker in n])
PY
  fi
  rm -rf "$out"
  "$(pw_k8s_python)" "$PW_ROOT/scripts/k8s/schemas.py" core "$src" "$out"
}

# Strimzi CRDs generated from io.strimzi:api by Strimzi's own crd-generator.
pw_k8s_strimzi_schemas() {
  local cache lib crds
  cache="$(pw_k8s_cache)"
  lib="$cache/strimzi-$PW_K8S_STRIMZI_VERSION/lib"
  crds="$cache/strimzi-$PW_K8S_STRIMZI_VERSION/crds"
  if [[ ! -f "$lib/api-$PW_K8S_STRIMZI_VERSION.jar" ]]; then
    pw_info "k8s: mvn dependency:copy-dependencies io.strimzi:api + crd-generator $PW_K8S_STRIMZI_VERSION"
    mkdir -p "$cache"
    if ! mvn -q -B -Dstyle.color=never -f "$PW_ROOT/scripts/k8s/strimzi-crd-pom.xml" \
      -Dstrimzi.version="$PW_K8S_STRIMZI_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$lib" >"$cache/mvn.log" 2>&1; then
      cat "$cache/mvn.log" >&2
      return 1
    fi
  fi
  pw_info "k8s: generating Strimzi CRDs (Kafka, KafkaNodePool, KafkaTopic, KafkaUser)"
  rm -rf "$crds" && mkdir -p "$crds"
  java -cp "$lib/*" io.strimzi.crdgenerator.CrdGenerator \
    --target-kube 1.16+ --crd-api-version v1 \
    --api-versions v1beta2 --storage-version v1beta2 \
    "io.strimzi.api.kafka.model.kafka.Kafka=$crds/kafka.json" \
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$crds/kafkanodepool.json" \
    "io.strimzi.api.kafka.model.topic.KafkaTopic=$crds/kafkatopic.json" \
    "io.strimzi.api.kafka.model.user.KafkaUser=$crds/kafkauser.json" 2>/dev/null || return 1
  "$(pw_k8s_python)" "$PW_ROOT/scripts/k8s/schemas.py" crd "$cache/schemas/crd" "$crds"/*.json
}

# Kong CRDs: from the Go module when the proxy serves it, else the repository's
# structural schemas (scripts/k8s/kong-crds.yaml).
pw_k8s_kong_schemas() {
  local cache go dir=""
  cache="$(pw_k8s_cache)"
  if go="$(pw_k8s_go)"; then
    # The proxy serves the module; the checksum database has no entry for it.
    dir="$(cd "$cache" && GOTOOLCHAIN=local GOFLAGS=-mod=mod GONOSUMDB="$PW_K8S_KONG_MODULE" \
      "$go" mod download -json \
      "$PW_K8S_KONG_MODULE@$PW_K8S_KONG_VERSION" 2>/dev/null |
      "$(pw_k8s_python)" -c 'import json,sys; print(json.load(sys.stdin).get("Dir",""))' 2>/dev/null)" || dir=""
  fi
  if [[ -n "$dir" && -d "$dir/config/crd" ]]; then
    pw_info "k8s: Kong CRDs from $PW_K8S_KONG_MODULE@$PW_K8S_KONG_VERSION"
    find "$dir/config/crd/ingress-controller" -name 'configuration.konghq.com_*.yaml' -print0 |
      xargs -0 "$(pw_k8s_python)" "$PW_ROOT/scripts/k8s/schemas.py" crd "$cache/schemas/crd"
  else
    pw_info "k8s: $PW_K8S_KONG_MODULE not obtainable; using scripts/k8s/kong-crds.yaml"
    "$(pw_k8s_python)" "$PW_ROOT/scripts/k8s/schemas.py" crd "$cache/schemas/crd" \
      "$PW_ROOT/scripts/k8s/kong-crds.yaml"
  fi
}

# Fingerprint of everything the schema directory is built from.
pw_k8s_schema_stamp() {
  printf '%s %s %s %s module-crds\n' "$PW_K8S_VALIDATE_VERSION" "$PW_K8S_SCHEMA_VERSION" \
    "$PW_K8S_STRIMZI_VERSION" "$PW_K8S_KONG_VERSION"
  cat "$PW_ROOT/scripts/k8s/schemas.py" "$PW_ROOT/scripts/k8s/kong-crds.yaml" \
    "$PW_ROOT/scripts/k8s/strimzi-crd-pom.xml" | sha256sum
}

pw_setup_k8s() {
  local cache stamp
  cache="$(pw_k8s_cache)"
  pw_k8s_go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$PW_K8S_KUSTOMIZE_VERSION" || return 1
  pw_k8s_go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform \
    "$PW_K8S_KUBECONFORM_VERSION" || return 1
  stamp="$(pw_k8s_schema_stamp)"
  if [[ -f "$cache/schemas/.stamp" && "$(cat "$cache/schemas/.stamp")" == "$stamp" ]]; then
    pw_info "k8s: validation schemas already in $cache/schemas"
    return 0
  fi
  pw_info "k8s: building validation schemas in $cache/schemas"
  rm -rf "$cache/schemas"
  mkdir -p "$cache/schemas"
  pw_k8s_core_schemas || return 1
  pw_k8s_strimzi_schemas || return 1
  pw_k8s_kong_schemas || return 1
  printf '%s\n' "$stamp" >"$cache/schemas/.stamp"
}

# Offline checks: both overlays render and every object validates strictly against
# the Kubernetes, Strimzi and Kong schemas. The policy assertions on the rendered
# output (tests/k8s) run in ./plantwatch test's pytest session; run them alone with
# `$PW_VENV/bin/python -m pytest tests/k8s`.
pw_test_k8s() {
  pw_info "k8s: rendering and validating k8s/overlays/{dev,prod}"
  PW_ROOT="$PW_ROOT" "$PW_ROOT/scripts/k8s/validate.sh" check dev prod
}
