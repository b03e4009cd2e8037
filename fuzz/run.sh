#!/usr/bin/env bash
# Runs a fuzz target with libFuzzer on the nightly toolchain (what `cargo fuzz run` does, plus
# --ignore-rust-version: mail-parser declares a newer rust-version than the toolchains here).
#   fuzz/run.sh dmarc_report [libFuzzer options, e.g. -max_total_time=600]
# Crashes land in fuzz/artifacts/<target>/; turn each into a regression test.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [libFuzzer options]}; shift
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions"
export ASAN_OPTIONS="detect_odr_violation=0"
cargo +nightly build --release --ignore-rust-version --target x86_64-unknown-linux-gnu --bin "$target" \
  --target-dir "${CASCADE_FUZZ_TARGET_DIR:-$HOME/.cache/cascade/fuzz-target}"
mkdir -p "corpus/$target" "artifacts/$target"
# New inputs go to corpus/ (not committed); seeds/ holds the committed starting points.
seeds=(); [ -d "seeds/$target" ] && seeds=("seeds/$target")
exec "${CASCADE_FUZZ_TARGET_DIR:-$HOME/.cache/cascade/fuzz-target}/x86_64-unknown-linux-gnu/release/$target" \
  -artifact_prefix="artifacts/$target/" "$@" "corpus/$target" "${seeds[@]}"
