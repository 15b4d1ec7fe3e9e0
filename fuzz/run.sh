#!/usr/bin/env bash
# Coverage-guided fuzzing of every boundary where attestgate parses input it does not control
# (cargo-fuzz: libFuzzer with AddressSanitizer, on nightly Rust). Installs the nightly toolchain
# and cargo-fuzz on first use; the normal test suite needs neither.
#
#   ./fuzz/run.sh                      smoke: every target for 10 s (CI, where nightly is present)
#   ./fuzz/run.sh --seconds 600        the recorded run: each target until 1,000,000 executions
#                                      or 600 s, whichever comes first
#   ./fuzz/run.sh --seconds 60 jws x5c some targets only
#
# Each target starts from its seeds (fuzz/seeds/<target>, committed) and a working corpus
# (fuzz/corpus/<target>, not committed) that grows from run to run. A crash stops the target, is
# saved under fuzz/artifacts/<target>/, and makes this script fail; once fixed, the input goes to
# fuzz/regressions/<target>/, which the normal suite replays (fuzz/harness/tests/replay.rs).
# libFuzzer's own output for each target is in fuzz/logs/<target>.log.
# The last lines are a Markdown table: target, executions, seconds, executions per second, corpus
# size, crashes.
set -euo pipefail
cd "$(dirname "$0")"

seconds=10
runs=1000000
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> rustup toolchain install nightly (for cargo-fuzz's sanitizer flags)"
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "==> cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz --version 0.13.2
fi
# The fuzz crate has its own target directory and lockfile; a CARGO_TARGET_DIR shared with the
# main build would mix instrumented and plain artifacts.
unset CARGO_TARGET_DIR RUSTC_WORKSPACE_WRAPPER
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# The dictionary each target's input speaks.
dictionary() {
    case "$1" in
        jws|verifier) echo dict/jwt.dict ;;
        x5c) echo dict/der.dict ;;
        config) echo dict/toml.dict ;;
        producers) echo dict/wasm.dict ;;
        verdict) echo "" ;;
        *) echo dict/json.dict ;;
    esac
}

echo "==> cargo fuzz build (release, debug assertions, AddressSanitizer)"
cargo +nightly fuzz build -O --debug-assertions

rows=()
failed=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target" logs
    dict="$(dictionary "$target")"
    log="logs/$target.log"
    echo "==> $target: up to $runs executions or $seconds s"
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run -O --debug-assertions "$target" "corpus/$target" "seeds/$target" -- \
        -runs="$runs" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 ${dict:+-dict=$dict} >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(find "corpus/$target" -type f | wc -l)
    crashes=0
    if [ "$status" -ne 0 ]; then
        crashes=1
        failed=1
        echo "!! $target failed (exit $status); the end of $log:" >&2
        tail -40 "$log" >&2
    fi
    rate=$(( ${executions:-0} / (elapsed > 0 ? elapsed : 1) ))
    rows+=("| \`$target\` | ${executions:-?} | $elapsed | $rate | $corpus | $crashes |")
done

echo
echo "| target | executions | seconds | per second | corpus | crashes |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$failed"
