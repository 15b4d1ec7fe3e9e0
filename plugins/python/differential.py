#!/usr/bin/env python3
"""The Python SDK and plugin against the Rust reference, on the edge cases the golden set leaves out.

Why: the golden cases are well-formed tokens. Real tokens vary (claims missing, null, of another
type, `tdx` as a list, lists where strings are expected), and a configuration can be wrong in many
ways; the Python port must judge all of these as the Rust plugin does. Each case here runs the
Python plugin natively (CPython, through the generated bindings: fast, no 30 s compile) and the Rust
reference through `attestgate plugin test`, and compares verdicts reason by reason, or the refusal
message of a configuration. Two differences are allowed, by design: serde's "at line L column C"
suffix is not reproduced, and the Python SDK names the offending key ("(at `hwmodels[0]`)") instead.
The Python plugin's messages are shown as the host shows every plugin's (control characters
escaped), since here they do not pass through the host.

Usage: plugins/python/build.sh --bindings, then
    ATTESTGATE=/path/to/attestgate python3 plugins/python/differential.py \
        [--reference target/plugins/wasm32-wasip2/release/confidential_space.wasm]
Last line: `N passed, N failed`.
"""

import argparse
import copy
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import unicodedata

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
DEFAULT_REFERENCE = (
    ROOT / "target" / "plugins" / "wasm32-wasip2" / "release" / "confidential_space.wasm"
)
AT = 1_900_000_000
AUDIENCE = "https://vault.bank-a.example"

STRICT = json.loads((GOLDEN / "confidential-space.json").read_text())
PRODUCTION = json.loads((GOLDEN / "claims" / "production.json").read_text())


def patched(*changes):
    """The production claims with (pointer, value) changes; the value DELETE removes the claim."""
    claims = copy.deepcopy(PRODUCTION)
    for path, value in changes:
        *parents, last = path.strip("/").split("/")
        node = claims
        for name in parents:
            node = node[name]
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return json.dumps(claims)


DELETE = object()
SUBMODS = PRODUCTION["submods"]

# (name, config, claims as JSON text)
VERDICT_CASES = [
    ("hwmodel as a list", STRICT, patched(("/hwmodel", ["GCP_INTEL_TDX"]))),
    ("hwmodel null", STRICT, patched(("/hwmodel", None))),
    ("hwmodel missing", STRICT, patched(("/hwmodel", DELETE))),
    ("hwmodel a number", STRICT, patched(("/hwmodel", 7))),
    ("AMD with no tdx", STRICT, patched(("/hwmodel", "GCP_AMD_SEV"), ("/tdx", DELETE))),
    ("tdx as a list", STRICT, patched(("/tdx", [{"gcp_attester_tcb_status": "UpToDate"}]))),
    ("tdx an empty list", STRICT, patched(("/tdx", []))),
    ("tdx a string", STRICT, patched(("/tdx", "UpToDate"))),
    ("tcb status a list", STRICT, patched(("/tdx/gcp_attester_tcb_status", ["UpToDate"]))),
    ("submods as a list", STRICT, patched(("/submods", [SUBMODS]))),
    ("submods a string", STRICT, patched(("/submods", "x"))),
    ("support_attributes missing", STRICT,
     patched(("/submods/confidential_space/support_attributes", DELETE))),
    ("support_attributes null", STRICT,
     patched(("/submods/confidential_space/support_attributes", None))),
    ("support_attributes a string", STRICT,
     patched(("/submods/confidential_space/support_attributes", "STABLE"))),
    ("support_attributes a number", STRICT,
     patched(("/submods/confidential_space/support_attributes", 5))),
    ("support_attributes mixed", STRICT,
     patched(("/submods/confidential_space/support_attributes", [5, "USABLE", None, "STABLE"]))),
    ("memory a string", STRICT,
     patched(("/submods/confidential_space/monitoring_enabled/memory", "false"))),
    ("memory null", STRICT,
     patched(("/submods/confidential_space/monitoring_enabled/memory", None))),
    ("monitoring missing", STRICT,
     patched(("/submods/confidential_space/monitoring_enabled", DELETE))),
    ("image_signatures null", STRICT, patched(("/submods/container/image_signatures", None))),
    ("image_signatures a string", STRICT,
     patched(("/submods/container/image_signatures", "sig"))),
    ("image_signatures mixed", STRICT,
     patched(("/submods/container/image_signatures", [1, {"key_id": "k"}, [{"key_id": 2}]]))),
    ("swversion odd values", STRICT, patched(("/swversion", ["abc", "+260700", " 260601 "]))),
    ("swversion a string", STRICT, patched(("/swversion", "260900"))),
    ("swversion a number", STRICT, patched(("/swversion", [260900]))),
    ("swversion too big", STRICT, patched(("/swversion", ["18446744073709551616"]))),
    ("dbgstat missing", STRICT, patched(("/dbgstat", DELETE))),
    ("dbgstat a number", STRICT, patched(("/dbgstat", 0))),
    ("project with quotes", STRICT, patched(("/submods/gce/project_id", 'a"b\\c\u00e9\n'))),
    ("project null", STRICT, patched(("/submods/gce/project_id", None))),
    ("service account a string", STRICT,
     patched(("/google_service_accounts", STRICT["service_accounts"][0]))),
    ("service accounts empty", STRICT, patched(("/google_service_accounts", []))),
    ("defaults only", {"audience": AUDIENCE}, patched()),
    ("defaults, debug image", {"audience": AUDIENCE},
     patched(("/dbgstat", "enabled"),
             ("/submods/confidential_space/support_attributes", DELETE))),
    ("nothing checked", {"audience": AUDIENCE, "require_production": False,
                         "support_attribute": None}, patched()),
    ("allowed values escaped", dict(STRICT, hwmodels=["\u00e9", "e\u0301", "\u200b", "\x00\t",
                                                      "\\\"'", "\u00a0", "\U0001F600"]),
     patched()),
    ("min_swversion with a sign", dict(STRICT, min_swversion="+260600"), patched()),
    ("min_swversion padded", dict(STRICT, min_swversion=" 260950\u3000"), patched()),
    ("vault_role null", dict(STRICT, vault_role=None), patched()),
    ("support LATEST", dict(STRICT, support_attribute="LATEST"), patched()),
]

CONFIG_CASES = [
    '{"audience":5}',
    '{"audience":null}',
    '{"audience":"a","nonces":null}',
    '{"audience":"a","nonces":["0123456789"]}',
    '{"audience":"a","require_production":"yes"}',
    '{"audience":"a","require_production":null}',
    '{"audience":"a","hwmodels":[1.5]}',
    '{"audience":"a","hwmodels":{}}',
    '{"audience":"a","hwmodels":[[]]}',
    '{"audience":"a","hwmodels":[true]}',
    '{"audience":"a","hwmodels":[-3]}',
    '{"audience":"a","hwmodels":null}',
    '{"audience":"a","projcts":["p"]}',
    "{}",
    "5",
    '"x"',
    '{"audience":" \\u2028\\t"}',
    '{"audience":"a","min_swversion":"26.06"}',
    '{"audience":"a","min_swversion":"\\u001c7"}',
    '{"audience":"a","min_swversion":"1_000"}',
    '{"audience":"a","min_swversion":"\\u0661"}',
    '{"audience":"a","min_swversion":"-1"}',
    '{"audience":"a","min_swversion":"18446744073709551615"}',
    '{"audience":"a","min_swversion":"18446744073709551616"}',
    '{"audience":"a","image_digests":["sha256:3C5E0D8A6B1F4E2D9C7A8B6F5E4D3C2B1A0F9E8D7C6B5A4F3E2D1C0B9A8F7E6D"]}',
    '{"audience":"a","image_digests":["sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d "]}',
    '{"audience":"a","support_attribute":null,"vault_role":"r"}',
]

SERDE_POSITION = re.compile(r" at line \d+ column \d+$")
PYTHON_WHERE = re.compile(r" \(at `[^`]*`\)")
REFUSED_PREFIX = 'plugin for "test" (validate-config) returned an error: '


def as_host_shows(message):
    """A reason message as the host displays it: control characters escaped as Rust's
    `escape_default` does (`host/src/http.rs`, escape_control)."""
    out = []
    for char in message:
        if unicodedata.category(char) != "Cc":
            out.append(char)
        elif char in "\t\r\n":
            out.append({"\t": "\\t", "\r": "\\r", "\n": "\\n"}[char])
        else:
            out.append("\\u{%x}" % ord(char))
    return "".join(out)


def rust(attestgate, reference, config_text, claims_text):
    """The reference plugin's verdict, or ("refused", message), through the host."""
    with tempfile.TemporaryDirectory() as tmp:
        config = pathlib.Path(tmp, "config.json")
        claims = pathlib.Path(tmp, "claims.json")
        config.write_text(config_text)
        claims.write_text(claims_text)
        done = subprocess.run(
            [attestgate, "plugin", "test", str(reference), "--claims", str(claims),
             "--plugin-config", str(config), "--at", str(AT), "--format", "json"],
            capture_output=True, text=True)
    output = json.loads(done.stdout)
    if "error" in output:
        message = output["error"]
        if message.startswith(REFUSED_PREFIX):
            return ("refused", SERDE_POSITION.sub("", message[len(REFUSED_PREFIX):]))
        return ("failed", message)
    return {
        "allow": output["allow"],
        "reasons": [dict(r, message=SERDE_POSITION.sub("", r["message"]))
                    for r in output["reasons"]],
        "role": (output.get("login") or {}).get("role"),
    }


def python(policy, types, err, config_text, claims_text):
    """The Python plugin's verdict, or ("refused", message), run natively as the host calls it."""
    ctx = types.Context("test", config_text, AT, None)
    try:
        policy.validate_config(ctx)
        policy.select_audience(ctx)
    except err as refused:
        return ("refused", PYTHON_WHERE.sub("", refused.value))
    verdict = policy.evaluate(ctx, claims_text)
    return {
        "allow": verdict.allow,
        "reasons": [{"claim": r.claim, "passed": r.passed, "message": as_host_shows(r.message)}
                    for r in verdict.reasons],
        "role": verdict.login.role,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=pathlib.Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()
    attestgate = os.environ.get("ATTESTGATE", "attestgate")
    if not (HERE / "bindings" / "wit_world").is_dir():
        print("error: no bindings; run plugins/python/build.sh --bindings", file=sys.stderr)
        return 2
    if not args.reference.is_file():
        print(f"error: no reference plugin at {args.reference}", file=sys.stderr)
        return 2
    sys.path[:0] = [str(HERE / "bindings"), str(HERE), str(HERE / "confidential_space")]
    import app  # noqa: E402 - needs the path above
    from componentize_py_types import Err  # noqa: E402
    from wit_world.imports import types  # noqa: E402

    policy = app.Policy()
    production = patched()
    cases = [(name, json.dumps(config), claims) for name, config, claims in VERDICT_CASES]
    cases += [(f"config {text}", text, production) for text in CONFIG_CASES]
    passed = failed = 0
    for name, config_text, claims_text in cases:
        ours = python(policy, types, Err, config_text, claims_text)
        theirs = rust(attestgate, args.reference, config_text, claims_text)
        if ours == theirs:
            passed += 1
            outcome = ours[0] if isinstance(ours, tuple) else ("allow" if ours["allow"] else "deny")
            print(f"ok   {name}  ({outcome})")
        else:
            failed += 1
            print(f"FAIL {name}\n     python {ours}\n     rust   {theirs}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
