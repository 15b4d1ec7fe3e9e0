"""An attestgate policy plugin in Python: this collaborator's rules.

`attestgate plugin new NAME --lang python` starts from this file; docs/python.md explains the SDK.
"""

from dataclasses import dataclass

import attestgate_sdk as sdk


@dataclass
class Config:  # the collaborator's plugin_config; unknown keys are refused
    audience: str
    projects: list[str]
    image_digests: list[str]


class OurRules:
    Config = Config

    def audience(self, ctx):
        return sdk.oidc(ctx.config.audience)

    def evaluate(self, ctx, claims):
        report = sdk.Report()
        report.add(sdk.production_only(claims))
        report.add(sdk.support_attribute(claims, "STABLE"))
        report.add(sdk.one_of(claims, "/submods/gce/project_id", ctx.config.projects))
        report.add(sdk.one_of(claims, "/submods/container/image_digest", ctx.config.image_digests))
        return report


Policy = sdk.export(OurRules())  # componentize-py exports the class named Policy
