#!/usr/bin/env bash
# Offline rendering and schema validation of the kustomize overlays in k8s/.
#
#   scripts/k8s/validate.sh render OVERLAY [OUT]   render k8s/overlays/OVERLAY (stdout or OUT)
#   scripts/k8s/validate.sh check [OVERLAY...]     render and validate (default: dev prod)
#   scripts/k8s/validate.sh validate FILE...       validate already rendered manifests
#
# Rendering happens in a scratch copy of k8s/ whose secret inputs are the committed
# *.example files, so the result never depends on (or contains) real credentials.
# Validation is kubeconform -strict against the Kubernetes 1.33 schemas and the
# Strimzi and Kong CRD schemas prepared by pw_setup_k8s (scripts/stack/k8s.sh):
# unknown fields and kinds without a schema are errors.
set -euo pipefail

ROOT="${PW_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
CACHE="${PW_CACHE:-$HOME/.cache/plantwatch}"
KUSTOMIZE="$CACHE/bin/kustomize"
KUBECONFORM="$CACHE/bin/kubeconform"
SCHEMAS="$CACHE/k8s/schemas"
K8S_VERSION="1.33.0"

die() { echo "validate.sh: $*" >&2; exit 1; }

need_tools() {
  [[ -x "$KUSTOMIZE" && -x "$KUBECONFORM" && -f "$SCHEMAS/.stamp" ]] ||
    die "kustomize, kubeconform or the schemas are missing in $CACHE; run ./plantwatch setup"
}

# scratch_tree DIR: copy k8s/ into DIR with example secrets and, if the Kong
# directory does not exist yet, an empty placeholder kustomization for it.
scratch_tree() {
  local dir="$1" f
  cp -r "$ROOT/k8s" "$dir/k8s"
  # drop real (git-ignored) secret inputs, then stand in the committed examples
  find "$dir/k8s" -path '*/secrets/*' -type f \( -name '*.env' -o -name '*.txt' \) -delete
  while IFS= read -r -d '' f; do
    cp "$f" "${f%.example}"
  done < <(find "$dir/k8s" -path '*/secrets/*.example' -type f -print0)
  if [[ ! -f "$dir/k8s/base/kong/kustomization.yaml" ]]; then
    echo "validate.sh: k8s/base/kong is missing; rendering with an empty placeholder" >&2
    mkdir -p "$dir/k8s/base/kong"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n' \
      >"$dir/k8s/base/kong/kustomization.yaml"
  fi
}

render() {
  local overlay="$1" out="${2:-/dev/stdout}" tmp
  [[ -d "$ROOT/k8s/overlays/$overlay" ]] || die "no overlay k8s/overlays/$overlay"
  tmp="$(mktemp -d)"
  scratch_tree "$tmp"
  if ! "$KUSTOMIZE" build "$tmp/k8s/overlays/$overlay" >"$tmp/out.yaml"; then
    rm -rf "$tmp"
    die "kustomize build k8s/overlays/$overlay failed"
  fi
  cat "$tmp/out.yaml" >"$out"
  rm -rf "$tmp"
}

# validate FILE...: kubeconform -strict with the cached schemas.
validate() {
  "$KUBECONFORM" -strict -summary -output text \
    -schema-location "$SCHEMAS/v$K8S_VERSION-standalone-strict/{{.ResourceKind}}{{.KindSuffix}}.json" \
    -schema-location "$SCHEMAS/crd/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json" \
    "$@"
}

check() {
  local overlay rc=0 tmp
  tmp="$(mktemp -d)"
  for overlay in "$@"; do
    echo "== k8s/overlays/$overlay: render"
    if ! render "$overlay" "$tmp/$overlay.yaml"; then
      rc=1
      continue
    fi
    echo "== k8s/overlays/$overlay: kubeconform -strict (Kubernetes $K8S_VERSION, Strimzi, Kong)"
    validate "$tmp/$overlay.yaml" || rc=1
  done
  rm -rf "$tmp"
  return "$rc"
}

cmd="${1:-check}"
shift || true
need_tools
case "$cmd" in
  render) [[ $# -ge 1 ]] || die "usage: render OVERLAY [OUT]"; render "$@" ;;
  validate) [[ $# -ge 1 ]] || die "usage: validate FILE..."; validate "$@" ;;
  check) if [[ $# -eq 0 ]]; then set -- dev prod; fi; check "$@" ;;
  *) die "unknown command $cmd (render|check|validate)" ;;
esac
