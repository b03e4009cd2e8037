#!/usr/bin/env bash
# End-to-end against a real cluster (kind or any other), run where KUBECONFIG points at one;
# skipped with a clear message otherwise. It installs the CRDs, runs the operator out of cluster
# against it, applies examples/cascade.yaml in fresh namespaces, and checks what the operator
# made: statuses Ready, the DkimKey and credentials Secrets, the relay bundle, keys and
# workloads, the relay's one-Secret RBAC, Events, and a SendingDomain deletion recorded as retired.
# Relay pods themselves need the images of the Helm/images issue; this suite checks the
# operator's side only.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v kubectl >/dev/null || ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "e2e: SKIP — no Kubernetes cluster reachable (set KUBECONFIG, e.g. after 'kind create cluster --config kind-config.yaml')"
  exit 0
fi
cargo build --locked --ignore-rust-version -p cascade-operator
run=$RANDOM
system=cascade-e2e-$run; shop=shop-e2e-$run
kubectl apply --server-side -f crds/cascade-mail.com_crds.yaml
kubectl create namespace "$system"; kubectl create namespace "$shop"
cleanup() { kill "${op:-0}" 2>/dev/null || true; kubectl delete namespace "$system" "$shop" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
target/debug/cascade-operator run --namespace "$system" --http 127.0.0.1:0 > "/tmp/cascade-e2e-$run.log" 2>&1 & op=$!
sed -e "s/namespace: cascade-system/namespace: $system/" -e "s/matchNames: \[shop\]/matchNames: [$shop]/" \
    -e "s/namespace: shop$/namespace: $shop/" examples/cascade.yaml | kubectl apply -f -
kubectl -n "$shop" wait --for=condition=Ready sendingdomain/shop --timeout=60s
kubectl -n "$shop" wait --for=condition=Ready apikey/web --timeout=60s
kubectl -n "$shop" wait --for=condition=Ready dkimkey/shop-dkim --timeout=60s
kubectl -n "$shop" get secret web-credentials shop-dkim >/dev/null
kubectl -n "$system" get secret main-relay-config main-keys >/dev/null
kubectl -n "$system" get statefulset/main-relay service/main-relay poddisruptionbudget/main-relay networkpolicy/main-relay \
  serviceaccount/main-relay role/main-relay rolebinding/main-relay >/dev/null
# The relay's account may read its bundle and nothing else.
kubectl auth can-i get secret/main-relay-config -n "$system" --as "system:serviceaccount:$system:main-relay" | grep -qx yes
if kubectl auth can-i get secret/main-keys -n "$system" --as "system:serviceaccount:$system:main-relay" >/dev/null; then
  echo "e2e: the relay's account can read main-keys"; exit 1
fi
kubectl -n "$system" get events --field-selector reason=ConfigUpdated -o name | grep -q .
kubectl get sendingdomains,dkimkeys,apikeys,relaypools -A
# Deleting the SendingDomain: recorded as retired, then gone.
kubectl -n "$shop" delete sendingdomain/shop --timeout=60s
kubectl -n "$system" get relaypool/main -o jsonpath='{.status.retiredDomains[*].domain}' | grep -qw shop.example
echo "e2e: passed"
