#!/usr/bin/env bash
# Fuzzes resil with cargo-fuzz (libFuzzer): builds the targets in fuzz/ and runs each for
# SECONDS (default 600), then prints per target the runs, execs/s, coverage, corpus size
# and crashes. Exits 1 when any target crashed (the input is under fuzz/artifacts/TARGET/),
# 2 on a setup error.
#
#   scripts/fuzz.sh                        # every target, 10 minutes each, one at a time
#   scripts/fuzz.sh 120 lab_request        # one target, 2 minutes
#   FUZZ_JOBS=2 scripts/fuzz.sh 600        # two targets at a time
#
# Toolchain: cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov);
# on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. Sanitizer: none by default
# (FUZZ_SANITIZER=address to change it). The targets are safe Rust, so what they find
# is panics, aborts, stack overflows, hangs and runaway memory, which libFuzzer catches
# without ASan; ASan would cost about 2x the executions for memory errors safe Rust cannot
# make. Debug assertions are on (-a), so integer overflow panics too.
#
# Corpus: fuzz/corpus/TARGET (generated, not committed) grows from fuzz/seeds/TARGET (real
# inputs from the repository, committed). Runs under `nice -n 19` so fuzzing yields the
# CPU to everything else. Logs go to fuzz/logs/TARGET.log.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-600}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a whole number, not $seconds" >&2; exit 2; }
all=(lab_request patch_apply scenario_yaml pricing_profile results_dir load_http_response)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
jobs="${FUZZ_JOBS:-1}"
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1

cd "$root"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  nice -n 19 cargo install cargo-fuzz --locked >&2
fi
for t in "${targets[@]}"; do
  [[ -f "fuzz/fuzz_targets/$t.rs" ]] || { echo "no fuzz target $t (have: ${all[*]})" >&2; exit 2; }
done

echo "building ${targets[*]} (sanitizer $sanitizer, debug assertions on)" >&2
for t in "${targets[@]}"; do
  nice -n 19 cargo fuzz build -s "$sanitizer" -a "$t" >&2
done

max_len() {
  case "$1" in
    results_dir) echo 65536 ;;
    *) echo 16384 ;;
  esac
}

# Runs one target; its exit status is libFuzzer's (0: no crash within the time).
run_one() {
  local t="$1"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/logs" "fuzz/seeds/$t"
  nice -n 19 cargo fuzz run -s "$sanitizer" -a "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"fuzz/logs/$t.log" 2>&1
}

# The figures of one finished run, from its log.
summarize() {
  local t="$1" status="$2" log="fuzz/logs/$1.log"
  local runs rate cov corp crashes
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)"
  corp="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | sed 's/corp: //' || true)"
  crashes="$(find "fuzz/artifacts/$t" -type f -newer "fuzz/logs/.start-$t" | wc -l)"
  printf '%-20s runs %-10s execs/s %-7s %-22s corpus %-14s crashes %s%s\n' \
    "$t" "${runs:-?}" "${rate:-?}" "${cov:-cov: ?}" "${corp:-?}" "$crashes" \
    "$([[ "$status" -ne 0 ]] && echo " (exit $status, see $log)")"
}

failed=0
declare -A status
pending=("${targets[@]}")
while [[ ${#pending[@]} -gt 0 ]]; do
  batch=("${pending[@]:0:$jobs}")
  pending=("${pending[@]:$jobs}")
  declare -A pids=()
  for t in "${batch[@]}"; do
    mkdir -p fuzz/logs && touch "fuzz/logs/.start-$t"
    echo "fuzzing $t for ${seconds}s" >&2
    run_one "$t" &
    pids[$t]=$!
  done
  for t in "${batch[@]}"; do
    if wait "${pids[$t]}"; then status[$t]=0; else status[$t]=$?; failed=1; fi
  done
  unset pids
done

for t in "${targets[@]}"; do
  summarize "$t" "${status[$t]}"
done
exit "$failed"
