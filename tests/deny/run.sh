#!/usr/bin/env bash
# cargo-deny with deny.toml: advisories (RustSec), licences, banned and duplicate crates,
# sources. These machines cannot fetch the advisory database: it comes from the snapshot
# bundle (../shared/advisory-db/advisory-db.bundle), cloned into the cache and used offline. The
# cargo-deny binary is built once and cached, keyed by version. Then the check is shown to
# fail: a throwaway database with one planted advisory against a crate in Cargo.lock must make
# it exit non-zero, naming the advisory.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=0.20.2
cache="$HOME/.cache/cascade"
deny="$cache/cargo-deny-$version/bin/cargo-deny"
if [ ! -x "$deny" ]; then
  echo "tests/deny: building cargo-deny $version (once; cached in $cache)"
  cargo install --locked --quiet cargo-deny --version "$version" --root "$cache/cargo-deny-$version"
fi
# cargo-deny reads the metadata of every platform's crates offline: fetch them (crates.io is
# reachable; only the advisory database is not).
cargo fetch --locked --quiet
bundle=""
for b in "${CASCADE_ADVISORY_BUNDLE:-}" ../shared/advisory-db/advisory-db.bundle /work/shared/advisory-db/advisory-db.bundle; do
  if [ -n "$b" ] && [ -f "$b" ]; then bundle=$b; break; fi
done
if [ -z "$bundle" ]; then
  echo "tests/deny: no advisory snapshot (set CASCADE_ADVISORY_BUNDLE); advisories NOT checked, the rest is"
  "$deny" --offline --locked check --hide-inclusion-graph bans licenses sources
  exit 0
fi
# The directory cargo-deny derives from deny.toml's db-urls (the RustSec URL).
dbs="$cache/advisory-dbs"
db="$dbs/advisory-db-3157b0e258782691"
head=$(git bundle list-heads "$bundle" | awk 'NR==1 {print $1}')
if [ "$(git -C "$db" rev-parse HEAD 2>/dev/null || true)" != "$head" ]; then
  rm -rf "$db"; mkdir -p "$dbs"
  git clone --quiet "$bundle" "$db"
fi
echo "tests/deny: advisory database $(git -C "$db" log -1 --format='%h of %cs') from $bundle"
CASCADE_ADVISORY_DBS="$dbs" "$deny" --offline --locked check --hide-inclusion-graph

# A planted advisory against `untrusted` (in Cargo.lock) must fail the same check.
planted=$(mktemp -d)
trap 'rm -rf "$planted"' EXIT
pdb="$planted/advisory-db-3157b0e258782691"
mkdir -p "$pdb/crates/untrusted"
cat > "$pdb/crates/untrusted/RUSTSEC-2026-9999.md" <<'ADVISORY'
```toml
[advisory]
id = "RUSTSEC-2026-9999"
package = "untrusted"
date = "2026-12-01"
categories = ["memory-corruption"]

[versions]
patched = [">= 99.0.0"]
```

# Planted by Cascade's tests: this advisory does not exist

The test command plants it to prove that an advisory against a crate in Cargo.lock fails the run.
ADVISORY
git -c init.defaultBranch=main -C "$pdb" init --quiet
git -C "$pdb" add .
git -C "$pdb" -c user.name=test -c user.email=test@localhost commit --quiet -m planted
if out=$(CASCADE_ADVISORY_DBS="$planted" "$deny" --offline --locked check --hide-inclusion-graph advisories 2>&1); then
  echo "tests/deny: the planted advisory did not fail the check:"; echo "$out"; exit 1
fi
if ! grep -q "RUSTSEC-2026-9999" <<<"$out"; then
  echo "tests/deny: the check failed, but not on the planted advisory:"; echo "$out"; exit 1
fi
echo "tests/deny: a planted advisory (RUSTSEC-2026-9999, untrusted) fails the check, as it must"
