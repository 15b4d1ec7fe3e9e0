"""The rules a careful collaborator wants of a Confidential Space workload, in Python.

Why it exists: it is the Rust reference plugin `plugins/confidential-space` ported rule for rule,
with the same configuration keys, defaults and validation messages, so that the golden cases
(`tests/fixtures/golden`) prove that a Python plugin decides exactly as the Rust one does: the same
verdicts, the same failed claims, the same reason messages. An absent list means no restriction;
every other rule is on unless switched off.

Build: `plugins/python/build.sh` (componentize-py, into target/plugins/python/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import attestgate_sdk as sdk


@dataclass
class Config:
    # The field order is the Rust struct's, so "unknown field" errors list the keys in the same order.
    # The collaborator's own audience (typically its Vault address).
    audience: str
    # Nonces bound into the token.
    nonces: list[str] = field(default_factory=list)
    # Handed to the exchange as the Vault role, when set.
    vault_role: Optional[str] = None
    require_production: bool = True
    # `null` switches the rule off.
    support_attribute: Optional[str] = "STABLE"
    hwmodels: Optional[list[str]] = None
    swnames: Optional[list[str]] = None
    image_digests: Optional[list[str]] = None
    projects: Optional[list[str]] = None
    service_accounts: Optional[list[str]] = None
    min_swversion: Optional[str] = None
    require_tdx_uptodate: bool = False
    require_memory_monitoring_disabled: bool = False


class ConfidentialSpace:
    Config = Config

    def validate(self, config: Config) -> None:
        if not sdk.trim(config.audience):
            raise sdk.ConfigError(
                "\"audience\" must be this collaborator's own audience, not empty"
            )
        for digest in config.image_digests or []:
            if not sdk.is_sha256_digest(digest):
                raise sdk.ConfigError(
                    f"image digest {sdk.rust_debug(digest)} is not sha256:<64 lowercase hex> "
                    "(check for stray spaces)"
                )
        if config.min_swversion is not None and sdk.parse_u64(config.min_swversion) is None:
            raise sdk.ConfigError(
                f"min_swversion {sdk.rust_debug(config.min_swversion)} is not a number like "
                '"260600"'
            )
        if config.support_attribute == "LATEST":
            sdk.log(
                sdk.LogLevel.WARN,
                "support_attribute LATEST drops off about a month after release; long-running "
                "workloads will start failing. Prefer STABLE.",
            )

    def audience(self, ctx: sdk.Context) -> sdk.AudienceRequest:
        return sdk.oidc(ctx.config.audience, ctx.config.nonces)

    def evaluate(self, ctx: sdk.Context, claims: sdk.Claims) -> sdk.Report:
        config = ctx.config
        report = sdk.Report()
        if config.require_production:
            report.add(sdk.production_only(claims))
        if config.support_attribute is not None:
            report.add(sdk.support_attribute(claims, config.support_attribute))
        lists = [
            ("hwmodel", config.hwmodels),
            ("swname", config.swnames),
            ("/submods/container/image_digest", config.image_digests),
            ("/submods/gce/project_id", config.projects),
            ("google_service_accounts", config.service_accounts),
        ]
        for key, allowed in lists:
            if allowed is not None:
                report.add(sdk.one_of(claims, key, allowed))
        if config.min_swversion is not None:
            report.add(sdk.min_swversion(claims, config.min_swversion))
        if config.require_tdx_uptodate:
            report.add(sdk.tdx_up_to_date(claims))
        if config.require_memory_monitoring_disabled:
            report.add(sdk.memory_monitoring_disabled(claims))
        if config.vault_role is not None:
            report.role(config.vault_role)
        return report


Policy = sdk.export(ConfidentialSpace())
