#!/usr/bin/env bash
# The short libFuzzer run of the test command: every target for a few seconds (default 10,
# CASCADE_FUZZ_SECONDS). Needs the nightly toolchain; without it, says SKIP and why. The long
# run is `fuzz/run.sh TARGET -max_total_time=3600` (README, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: SKIP: no nightly toolchain (rustup toolchain install nightly); the stable mutation runs in cargo test still ran"
  exit 0
fi
seconds=${CASCADE_FUZZ_SECONDS:-10}
for target in smtp_command smtp_session config_loader spool_reader dmarc_report; do
  log=$(mktemp)
  if bash run.sh "$target" -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz/smoke.sh: $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds}s, no crash"
    rm -f "$log"
  else
    tail -n 60 "$log"
    echo "fuzz/smoke.sh: $target FAILED; the input is in fuzz/artifacts/$target/ (log: $log)"
    exit 1
  fi
done
