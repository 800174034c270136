#!/usr/bin/env bash
# The Secret the chart reads on kind (secrets.existingSecret in deploy/kind/values.yaml), made
# once: Tilt renders the chart with `helm template`, where generated keys would change on every
# reload. Kept if it exists.
set -euo pipefail
context="${1:-kind-codesync}"
namespace="${2:-codesync}"
kubectl --context "$context" get namespace "$namespace" >/dev/null 2>&1 \
    || kubectl --context "$context" create namespace "$namespace"
if kubectl --context "$context" -n "$namespace" get secret codesync-keys >/dev/null 2>&1; then
    exit 0
fi
# 48 random bytes as base64url without padding (64 characters); the password letters and digits.
key() { head -c 48 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='; }
password=$(head -c 32 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 32)
kubectl --context "$context" -n "$namespace" create secret generic codesync-keys \
    --from-literal=jwt-signing-key="$(key)" \
    --from-literal=service-key="$(key)" \
    --from-literal=postgres-password="$password"
