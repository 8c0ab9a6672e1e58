#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build and reports how many inputs
# each executed. Fails (exit 1) on any finding: a crash, a sanitizer report,
# a leak, a timeout or an out-of-memory.
#
#   bash tools/run_fuzzers.sh BUILD_DIR SECONDS      # each target for SECONDS
#   FUZZ_RUNS=1000000 bash tools/run_fuzzers.sh BUILD_DIR 0
#                                                    # each target for N inputs
#
# The committed seeds (fuzz/seeds/TARGET/) are copied into a working corpus
# under BUILD_DIR/fuzz-corpus/TARGET, so new inputs never touch the tree.
# Crash inputs land in BUILD_DIR/fuzz-artifacts/; replay one with
#   BUILD_DIR/fuzz/TARGET FILE
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: bash tools/run_fuzzers.sh BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
targets="fuzz_safetensors fuzz_npy fuzz_idx fuzz_vnm fuzz_ckpt"
declare -A dict=([fuzz_safetensors]=safetensors [fuzz_npy]=npy [fuzz_idx]=idx [fuzz_vnm]=safetensors [fuzz_ckpt]=safetensors)

mkdir -p "$build/fuzz-artifacts"
status=0
summary=""
for t in $targets; do
  bin="$build/fuzz/$t"
  if [ ! -x "$bin" ]; then
    echo "run_fuzzers: $bin not built (configure with CC=clang -DSPARQ_FUZZ=ON)" >&2
    exit 1
  fi
  corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  cp -n "$root/fuzz/seeds/$t/"* "$corpus/" 2>/dev/null || true
  if [ -n "${FUZZ_RUNS:-}" ]; then
    limit="-runs=$FUZZ_RUNS"
  else
    limit="-max_total_time=$seconds"
  fi
  log="$build/fuzz-artifacts/$t.log"
  echo "== $t ($limit)"
  set +e
  # -jobs=1 keeps the machine usable for others; -timeout catches hangs
  "$bin" "$limit" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -dict="$root/fuzz/seeds/dicts/${dict[$t]}.dict" \
    -artifact_prefix="$build/fuzz-artifacts/$t-" "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    echo "run_fuzzers: $t FAILED (exit $rc); last lines of $log:" >&2
    tail -40 "$log" >&2
    status=1
  fi
  summary+=$(printf '%-18s %12s executions  %s' "$t" "${runs:-?}" "$([ $rc -eq 0 ] && echo ok || echo FINDING)")$'\n'
done
echo "== executed units"
printf '%s' "$summary"
exit $status
