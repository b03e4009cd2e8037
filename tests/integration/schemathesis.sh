#!/usr/bin/env bash
# Prints the path of schemathesis (OpenAPI fuzzing, from PyPI), installed once into a venv in
# ~/.cache/cascade keyed by its version.
set -euo pipefail
version=4.32.5
dir=${XDG_CACHE_HOME:-$HOME/.cache}/cascade/schemathesis-$version
if ! [ -x "$dir/bin/schemathesis" ]; then
  rm -rf "$dir"
  /usr/bin/python3 -m venv "$dir" >&2 && "$dir/bin/pip" install -q "schemathesis==$version" >&2
fi
echo "$dir/bin/schemathesis"
