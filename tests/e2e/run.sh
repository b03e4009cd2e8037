#!/usr/bin/env bash
# End-to-end against a real cluster (kind or any other), run where KUBECONFIG points at one;
# skipped with a clear message otherwise. It installs the CRDs, runs the operator out of cluster
# against it, applies examples/cascade.yaml in fresh namespaces, and checks what the operator
# made: statuses Ready, the DkimKey and credentials Secrets, the relay bundle, keys and
# workloads, the relay's one-Secret RBAC, Events, and a SendingDomain deletion recorded as retired.
# With docker and a kind cluster named `cascade` it runs the README's kind walkthrough instead
# (images, helm install, a message through the NodePort).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v kubectl >/dev/null || ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "e2e: SKIP — no Kubernetes cluster reachable (set KUBECONFIG, e.g. after 'kind create cluster --config kind-config.yaml')"
  exit 0
fi
# With docker and kind: the whole walkthrough of the README (images, helm install, the kind
# example, a message through the NodePort with swaks). Otherwise the operator out of cluster.
if command -v docker >/dev/null && command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx cascade; then
  helm=$(bash tests/chart/tools.sh | head -1)
  docker build -q -f relay/Dockerfile -t cascade-relay:e2e .
  docker build -q -f operator/Dockerfile -t cascade-operator:e2e .
  kind load docker-image cascade-relay:e2e cascade-operator:e2e --name cascade
  "$helm" upgrade --install cascade charts/cascade -n cascade-system --create-namespace --wait --timeout 5m \
    --set image.operator.repository=cascade-operator --set image.operator.tag=e2e --set image.operator.pullPolicy=Never \
    --set image.relay.repository=cascade-relay --set image.relay.tag=e2e
  kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f examples/kind.yaml
  kubectl -n shop wait --for=condition=Ready apikey/web sendingdomain/shop --timeout=120s
  kubectl -n cascade-system rollout status statefulset/main-relay --timeout=300s
  user=$(kubectl -n shop get secret web-credentials -o go-template='{{.data.username|base64decode}}')
  pass=$(kubectl -n shop get secret web-credentials -o go-template='{{.data.password|base64decode}}')
  swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user "$user" --auth-password "$pass" \
    --from orders@shop.example --to someone@example.net --timeout 30 | grep -q "250 2.0.0 OK queued as"
  kubectl get sendingdomains,dkimkeys,apikeys,relaypools -A
  # The plugin's one screen, and the pool Ready on the current configuration.
  cargo build --locked --ignore-rust-version -p cascade-operator --bin kubectl-cascade
  PATH=$PWD/target/debug:$PATH kubectl cascade status -A
  kubectl -n cascade-system wait --for=condition=Ready relaypool/main --timeout=300s
  # The CPU autoscaler acts under load (requests are set by spec.pod.resources): metrics-server
  # when the cluster has none, a low target, then load until the HPA wants more than one relay.
  if ! kubectl get apiservice v1beta1.metrics.k8s.io >/dev/null 2>&1; then
    kubectl apply -f https://github.com/kubernetes-sigs/metrics-server/releases/latest/download/components.yaml
    kubectl -n kube-system patch deployment metrics-server --type json \
      -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
    kubectl -n kube-system rollout status deployment/metrics-server --timeout=180s
  fi
  kubectl -n cascade-system patch relaypool main --type merge \
    -p '{"spec":{"autoscaling":{"minReplicas":1,"maxReplicas":3,"targetCpuPercent":5}}}'
  scaled=
  for i in $(seq 1 60); do   # at most 60 rounds of 20 messages (about 10 minutes)
    for j in $(seq 1 20); do
      swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user "$user" --auth-password "$pass" \
        --from orders@shop.example --to "load$j@example.net" --timeout 30 >/dev/null 2>&1 &
    done
    wait
    want=$(kubectl -n cascade-system get hpa main-relay -o jsonpath='{.status.desiredReplicas}' 2>/dev/null || echo 0)
    if [ "${want:-0}" -gt 1 ]; then scaled=$want; break; fi
  done
  [ -n "$scaled" ] || { echo "e2e: the HPA never asked for more relays under load"; kubectl -n cascade-system describe hpa main-relay; exit 1; }
  echo "e2e: the HPA scaled the pool to $scaled relays under load"
  # Scale down with mail queued: nothing is stranded (the handover, or a drain Job).
  kubectl -n cascade-system patch relaypool main --type merge -p '{"spec":{"autoscaling":null}}'
  kubectl -n cascade-system patch relaypool main --type merge -p '{"spec":{"replicas":0}}'
  kubectl -n cascade-system wait --for=delete pod/main-relay-0 --timeout=180s
  echo "e2e: passed (helm, kind)"
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
