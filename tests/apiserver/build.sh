#!/usr/bin/env bash
# Builds a real Kubernetes API server (k8s.io/apiextensions-apiserver) and etcd from Debian sid's
# Go source packages, without touching the machine's own apt state, and caches the two binaries.
# Prints the directory holding `apiextensions-apiserver` and `etcd`. See
# ../shared/recipes/real-kubernetes-api.md. Exit 3 means "cannot be built here" (tests skip).
set -euo pipefail
CACHE=${CASCADE_CACHE:-$HOME/.cache/cascade}
BIN=$CACHE/apiserver/bin
if [ -x "$BIN/apiextensions-apiserver" ] && [ -x "$BIN/etcd" ]; then echo "$BIN"; exit 0; fi
work=$CACHE/apiserver/build
mkdir -p "$work"/{etc/none,state/lists/partial,cache/archives/partial,debs,root} "$BIN"
cat > "$work/etc/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
SRC
: > "$work/etc/status.empty"
cat > "$work/apt.conf" <<CONF
Dir::State "$work/state";
Dir::State::Lists "$work/state/lists";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$work/cache";
Dir::Etc::SourceList "$work/etc/sources.list";
Dir::Etc::SourceParts "$work/etc/none";
Dir::Etc::Preferences "$work/etc/none";
Dir::Etc::PreferencesParts "$work/etc/none";
APT::Get::Download-Only "true";
APT::Sandbox::User "root";
CONF
export APT_CONFIG=$work/apt.conf
build() {
  apt-get update -qq >&2
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
           golang-k8s-apiextensions-apiserver-dev | grep -E '^golang-.*-dev$' | sort -u)
  gover=$(apt-cache depends golang-go | sed -n 's/.*Depends: \(golang-1\.[0-9]*-go\).*/\1/p' | head -1)
  [ -n "$gover" ] || { echo "no golang-1.NN-go in sid" >&2; exit 3; }
  src=${gover%-go}-src
  cd "$work/debs"
  # shellcheck disable=SC2086
  apt-get download -qq $pkgs "$gover" "$src" etcd-server >&2
  for d in *.deb; do dpkg -x "$d" "$work/root"; done
  v=${gover#golang-}; goroot=$work/root/usr/lib/go-${v%-go}
  cd "$work"
  GO111MODULE=off GOPATH=$work/root/usr/share/gocode CGO_ENABLED=0 GOTOOLCHAIN=local GOROOT=$goroot GOCACHE=$work/gocache \
    "$goroot/bin/go" build -o "$BIN/apiextensions-apiserver" k8s.io/apiextensions-apiserver >&2
  cp "$work/root/usr/bin/etcd" "$BIN/etcd"
}
# errexit must hold inside build(), so it runs in a subshell outside any `||` or `if`.
set +e
(set -e; build)
rc=$?
set -e
if [ $rc -ne 0 ] || [ ! -x "$BIN/apiextensions-apiserver" ] || [ ! -x "$BIN/etcd" ]; then
  echo "building the API server failed (see above)" >&2
  exit 3
fi
rm -rf "$work"
echo "$BIN"
