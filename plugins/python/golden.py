#!/usr/bin/env python3
"""Golden cases for the Python plugin, through the real host.

Why: the Python port is only worth having if it decides exactly as the Rust reference plugin does.
Every case in tests/fixtures/golden/cases.json is run through `attestgate plugin test --format json`
(the host's own sandbox, limits and checks, not a Python harness), and must give the expected
verdict with exactly the expected failed claims. When the Rust reference plugin is at hand, the
whole verdict (every reason's claim, outcome and message, and the login role) and the selected
audience must also be identical to its output for the same case.

Usage (from anywhere):
    ATTESTGATE=/path/to/attestgate python3 plugins/python/golden.py \
        [--plugin target/plugins/python/confidential_space_py.wasm] \
        [--reference target/plugins/wasm32-wasip2/release/confidential_space.wasm | --no-reference] \
        [--deadline-ms N] [--memory-bytes N] [--case NAME ...]

`$ATTESTGATE` defaults to `attestgate` on the PATH. Exits 0 when every case passes, 1 when any
fails, 2 when something needed is missing. The last line is `N passed, N failed`.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "golden"
DEFAULT_PLUGIN = ROOT / "target" / "plugins" / "python" / "confidential_space_py.wasm"
DEFAULT_REFERENCE = (
    ROOT / "target" / "plugins" / "wasm32-wasip2" / "release" / "confidential_space.wasm"
)
# A plugin failure (trap, deadline, memory, bad return, refused configuration): see `plugin test`.
EXIT_PLUGIN_FAILURE = 4


def run(attestgate, plugin, case, golden, limits):
    """One `plugin test` run: (its JSON output or None, exit code, seconds, stderr)."""
    command = [
        attestgate, "plugin", "test", str(plugin),
        "--claims", str(GOLDEN / case["claims"]),
        "--plugin-config", str(GOLDEN / "confidential-space.json"),
        "--at", str(golden["at"]),
        "--audience", golden["audience"],
        "--format", "json",
    ] + limits
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        output = json.loads(done.stdout)
    except ValueError:
        output = None
    return output, done.returncode, seconds, done.stderr.strip()


def verdict_of(output):
    """The parts of `plugin test` output that are the plugin's decision (not the timing)."""
    return {key: output.get(key) for key in ("audience", "allow", "reasons", "login")}


def check(case, golden, python, reference):
    """Every way this case's Python run differs from what it should be (empty: it passed)."""
    output, code, _, stderr = python
    if output is None or "allow" not in output:
        detail = (output or {}).get("error") or stderr or f"exit {code}, no JSON"
        kind = "plugin failure" if code == EXIT_PLUGIN_FAILURE else "no verdict"
        return [f"{kind}: {detail}"]
    problems = []
    verdict = "allow" if output["allow"] else "deny"
    if verdict != case["expect"]:
        problems.append(f"verdict {verdict}, expected {case['expect']}")
    if code != (0 if output["allow"] else 1):
        problems.append(f"exit code {code} does not match the verdict {verdict}")
    failed = sorted(r["claim"] for r in output["reasons"] if not r["passed"])
    if failed != sorted(case["failed_claims"]):
        problems.append(f"failed claims {failed}, expected {sorted(case['failed_claims'])}")
    if output["allow"] and (output.get("login") or {}).get("role") != golden.get("role"):
        problems.append(f"login {output.get('login')}, expected role {golden.get('role')!r}")
    if reference is not None:
        ref_output = reference[0]
        if ref_output is None or "allow" not in ref_output:
            problems.append(f"the reference plugin gave no verdict: {reference[3] or ref_output}")
        else:
            problems += differences(verdict_of(output), verdict_of(ref_output))
    return problems


def differences(ours, theirs):
    """Human-readable differences between two verdicts, reason by reason."""
    found = []
    for key in ("audience", "allow", "login"):
        if ours[key] != theirs[key]:
            found.append(f"{key}: python {ours[key]!r}, rust {theirs[key]!r}")
    ours_r, theirs_r = ours["reasons"], theirs["reasons"]
    if len(ours_r) != len(theirs_r):
        found.append(f"python gave {len(ours_r)} reasons, rust {len(theirs_r)}")
    for i, (a, b) in enumerate(zip(ours_r, theirs_r)):
        if a != b:
            found.append(f"reason {i}: python {a!r}\n{' ' * 12}rust   {b!r}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", type=pathlib.Path, default=DEFAULT_PLUGIN)
    parser.add_argument("--reference", type=pathlib.Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--no-reference", action="store_true",
                        help="check only the expectations in cases.json")
    parser.add_argument("--deadline-ms", type=int)
    parser.add_argument("--memory-bytes", type=int)
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    args = parser.parse_args()

    attestgate = os.environ.get("ATTESTGATE", "attestgate")
    golden = json.loads((GOLDEN / "cases.json").read_text())
    if not args.plugin.is_file():
        print(f"error: no plugin at {args.plugin}; build it with plugins/python/build.sh",
              file=sys.stderr)
        return 2
    reference = None if args.no_reference else args.reference
    if reference is not None and not reference.is_file():
        print(f"error: no reference plugin at {reference}; build it with "
              "`cd plugins && cargo build --release`, pass --reference, or --no-reference",
              file=sys.stderr)
        return 2
    limits = []
    if args.deadline_ms is not None:
        limits += ["--deadline-ms", str(args.deadline_ms)]
    if args.memory_bytes is not None:
        limits += ["--memory-bytes", str(args.memory_bytes)]

    cases = [c for c in golden["cases"] if not args.case or c["case"] in args.case]
    passed = failed = 0
    for case in cases:
        try:
            python = run(attestgate, args.plugin, case, golden, limits)
            rust = run(attestgate, reference, case, golden, []) if reference else None
        except FileNotFoundError:
            print(f"error: cannot run {attestgate!r}; set ATTESTGATE to the attestgate binary",
                  file=sys.stderr)
            return 2
        problems = check(case, golden, python, rust)
        timing = f"python {python[2]:.1f} s"
        if python[0] and "duration_us" in python[0]:
            timing += f" (call {python[0]['duration_us'] / 1000:.1f} ms)"
        if rust:
            timing += f", rust {rust[2]:.1f} s"
        status = "ok  " if not problems else "FAIL"
        print(f"{status} {case['case']:<26} {case['expect']:<5}  {timing}", flush=True)
        for problem in problems:
            print(f"       {problem}")
        passed += not problems
        failed += bool(problems)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
