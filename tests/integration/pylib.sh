#!/usr/bin/env bash
# Installs a PyPI test peer (pure Python) once into ~/.cache/cascade/pylib-NAME-VERSION for
# Debian's /usr/bin/python3 and prints that directory (the tests put it on sys.path).
# Usage: pylib.sh NAME==VERSION
set -euo pipefail
spec=$1
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cascade
dir=$cache/pylib-${spec/==/-}
if ! [ -f "$dir/.complete" ]; then
  venv=$cache/pylib-venv
  [ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv" >&2
  rm -rf "$dir"
  "$venv/bin/pip" install -q --target "$dir" "$spec" >&2
  touch "$dir/.complete"
fi
echo "$dir"
