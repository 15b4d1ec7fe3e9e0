#!/usr/bin/env python3
"""Unit tests of the Python SDK's fail-closed guarantees, run natively (no WebAssembly, no host).

Why: the SDK promises that no mistake in a plugin turns into an allow: a policy that raises, returns
the wrong thing, checks nothing, or allows with a failed rule is a deny, and a configuration that
does not parse, or whose checks raise, is refused. Those paths are rare in real use, so they are
tested here, where each takes a millisecond. Agreement with the Rust SDK is tested elsewhere
(golden.py through the host, differential.py on edge cases).

Run: plugins/python/build.sh --bindings && python3 plugins/python/test_sdk.py
"""

import json
import pathlib
import sys
import unittest
from dataclasses import dataclass
from typing import Optional

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "bindings"), str(HERE)]

import attestgate_sdk as sdk  # noqa: E402 - needs the path above
from componentize_py_types import Err  # noqa: E402
from wit_world.imports import types  # noqa: E402

PRODUCTION = (HERE.parent.parent / "tests/fixtures/golden/claims/production.json").read_text()


@dataclass
class Config:
    audience: str
    projects: Optional[list[str]] = None


class Rules:
    """A policy whose `evaluate` is whatever the test sets."""

    Config = Config

    def __init__(self, evaluate=None, validate=None):
        self._evaluate = evaluate
        if validate is not None:
            self.validate = validate

    def audience(self, ctx):
        return sdk.oidc(ctx.config.audience)

    def evaluate(self, ctx, claims):
        return self._evaluate(ctx, claims)


def call(policy, config='{"audience":"a"}', claims=PRODUCTION):
    return sdk.export(policy)().evaluate(types.Context("bank-a", config, 0, "bank-a-role"), claims)


def validate(policy, config):
    sdk.export(policy)().validate_config(types.Context("bank-a", config, 0, "bank-a-role"))


class FailsClosed(unittest.TestCase):
    def assert_denies(self, verdict, text):
        self.assertFalse(verdict.allow)
        failed = [r for r in verdict.reasons if not r.passed]
        self.assertTrue(failed, "a deny must carry a failed reason")
        self.assertIn(text, " ".join(r.message for r in failed))

    def test_a_policy_that_raises_denies(self):
        def boom(ctx, claims):
            raise KeyError("submods")

        self.assert_denies(call(Rules(boom)), "the policy failed in evaluate: KeyError")

    def test_even_sys_exit_denies(self):
        self.assert_denies(call(Rules(lambda ctx, claims: sys.exit(0))),
                           "the policy failed in evaluate: SystemExit")

    def test_a_bad_configuration_refuses_the_audience_with_its_own_words(self):
        with self.assertRaises(Err) as refused:
            sdk.export(Rules())().select_audience(types.Context("bank-a", "{}", 0, None))
        self.assertEqual(refused.exception.value,
                         "invalid plugin configuration: missing field `audience`")

    def test_a_policy_that_returns_the_wrong_thing_denies(self):
        self.assert_denies(call(Rules(lambda ctx, claims: True)), "not a Report or Verdict")

    def test_the_vault_role_reaches_the_policy(self):
        seen = []

        def record(ctx, claims):
            seen.append(ctx.vault_role)
            return sdk.Report().pass_(None, "ok")

        call(Rules(record))
        self.assertEqual(seen, ["bank-a-role"])

    def test_a_policy_that_checks_nothing_denies(self):
        verdict = call(Rules(lambda ctx, claims: sdk.Report()))
        self.assert_denies(verdict, "checked no rule")
        self.assertIsNone(verdict.reasons[0].claim)

    def test_an_allow_with_a_failed_rule_denies(self):
        forged = types.Verdict(True, [types.Reason("/x", False, "no")], types.Login(None))
        self.assert_denies(call(Rules(lambda ctx, claims: forged)), "allowed with a failed rule")
        empty = types.Verdict(True, [], types.Login(None))
        self.assert_denies(call(Rules(lambda ctx, claims: empty)), "or with none checked")

    def test_claims_that_are_not_an_object_deny_naming_no_claim(self):
        allow_all = Rules(lambda ctx, claims: sdk.Report().pass_(None, "ok"))
        for claims in ("[]", "", "{", '{"a": NaN}'):
            verdict = call(allow_all, claims=claims)
            self.assert_denies(verdict, "claims are not")
            self.assertIsNone(verdict.reasons[0].claim)

    def test_a_bad_configuration_denies_at_evaluate_too(self):
        allow_all = Rules(lambda ctx, claims: sdk.Report().pass_(None, "ok"))
        self.assert_denies(call(allow_all, config='{"audience":"a","projets":[]}'),
                           "unknown field `projets`")

    def test_unknown_keys_and_wrong_types_are_refused(self):
        policy = Rules()
        with self.assertRaisesRegex(Err, "unknown field `projets`, expected `audience` or"):
            validate(policy, '{"audience":"a","projets":[]}')
        with self.assertRaisesRegex(Err, r"expected a string \(at `projects\[1\]`\)"):
            validate(policy, '{"audience":"a","projects":["p",1]}')
        with self.assertRaisesRegex(Err, "missing field `audience`"):
            validate(policy, "{}")
        validate(policy, '{"audience":"a","projects":null}')

    def test_a_validate_that_raises_refuses(self):
        def refuse(config):
            raise sdk.ConfigError("projects must not be empty")

        def crash(config):
            return config.nothing

        with self.assertRaises(Err) as refused:
            validate(Rules(validate=refuse), '{"audience":"a"}')
        self.assertEqual(refused.exception.value, "projects must not be empty")
        with self.assertRaisesRegex(Err, "the policy failed in validate: AttributeError"):
            validate(Rules(validate=crash), '{"audience":"a"}')

    def test_a_report_allows_only_when_every_rule_passed(self):
        report = sdk.Report().pass_("hwmodel", "ok").pass_(None, "inside the window")
        verdict = report.role("analytics").verdict()
        self.assertTrue(verdict.allow)
        self.assertEqual([r.claim for r in verdict.reasons], ["/hwmodel", None])
        self.assertEqual(verdict.login.role, "analytics")
        self.assertFalse(sdk.Report().pass_("/dbgstat", "ok").fail(None, "late").verdict().allow)

    def test_pointers_and_rust_text(self):
        self.assertEqual(sdk.pointer("a/b~c"), "/a~1b~0c")
        self.assertEqual(sdk.rust_debug(["a\"b", "\x1c", "e\u0301"]),
                         '["a\\"b", "\\u{1c}", "e\\u{301}"]')
        self.assertEqual(sdk.parse_u64(" +260600\u3000"), 260600)
        for text in ("1_000", "\u0661", "-1", "+", "", str(2**64)):
            self.assertIsNone(sdk.parse_u64(text), text)

    def test_claims_are_read_leniently(self):
        claims = sdk.Claims.parse(json.dumps({
            "hwmodel": ["GCP_INTEL_TDX"], "tdx": [{"gcp_attester_tcb_status": "UpToDate"}],
            "submods": [{"gce": {"project_id": "p"}, "confidential_space": None}],
            "x": [{"y": 1}]}))
        self.assertIsNone(claims.hwmodel())
        self.assertEqual(claims.strings("hwmodel"), ["GCP_INTEL_TDX"])
        self.assertEqual(claims.tdx_tcb_status(), "UpToDate")
        self.assertEqual(claims.project_id(), "p")
        self.assertIsNone(claims.support_attributes())
        self.assertEqual(claims.pointer("/x/0/y"), 1)
        self.assertIsNone(claims.pointer("/x/00/y"))


if __name__ == "__main__":
    unittest.main()
