#!/usr/bin/env bash
# The attestgate demo, on local servers it starts itself:
#   1. a dev Confidential Space launcher (token socket, token file, OIDC discovery + JWKS);
#   2. a token minted for one collaborator's own audience, with a nonce;
#   3. that token verified against the issuer's keys, and refused for another collaborator.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building attestgate (release)"
cargo build --release --quiet -p attestgate
bin="$PWD/target/release/attestgate"

work="$(mktemp -d)"
launcher_pid=""
cleanup() {
    if [ -n "$launcher_pid" ]; then kill -TERM "$launcher_pid" 2>/dev/null || true; wait "$launcher_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting the dev launcher in $work"
"$bin" dev launcher --dir "$work" > "$work/launcher.log" 2>&1 &
launcher_pid=$!
for _ in $(seq 1 300); do
    [ -f "$work/launcher.json" ] && break
    kill -0 "$launcher_pid" 2>/dev/null || { cat "$work/launcher.log"; exit 1; }
    sleep 0.1
done
[ -f "$work/launcher.json" ] || { echo "the dev launcher did not become ready"; cat "$work/launcher.log"; exit 1; }
jwks_url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jwks_url"])' "$work/launcher.json")"
echo "    jwks: $jwks_url"

audience="https://vault.bank-a.example"
nonce="demo-$(date +%s)-nonce"
echo
echo "==> asking the launcher socket for a token with audience $audience"
"$bin" token get --socket "$work/teeserver.sock" --audience "$audience" --nonce "$nonce" > "$work/bank-a.jwt"

echo
echo "==> verifying it as bank-a would (RS256 via JWKS, iss, aud, exp/nbf/iat)"
"$bin" verify --token "$work/bank-a.jwt" --jwks-url "$jwks_url" --audience "$audience"

echo
echo "==> the same token presented to bank-b is refused: its audience is bank-a's"
if "$bin" verify --token "$work/bank-a.jwt" --jwks-url "$jwks_url" --audience "https://vault.bank-b.example"; then
    echo "unexpected: bank-b accepted bank-a's token"; exit 1
fi
echo
echo "demo finished: the launcher is stopped and $work removed"
