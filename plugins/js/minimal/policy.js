// The smallest useful policy, as shown in docs/js.md: a production image with STABLE support, from
// the collaborator's projects and images, until the agreement ends. Start a new plugin from here.
import { definePolicy, field, oidc, Report, rules } from '../sdk/attestgate.js';

export const policy = definePolicy({
  config: {
    audience: field.string(),
    projects: field.strings(),
    image_digests: field.strings(),
    vault_role: field.string({ optional: true }),
  },
  audience: (ctx) => oidc(ctx.config.audience),
  evaluate(ctx, claims) {
    const report = new Report();
    report.add(rules.productionOnly(claims));
    report.add(rules.supportAttribute(claims, 'STABLE'));
    report.add(rules.oneOf(claims, '/submods/gce/project_id', ctx.config.projects));
    report.add(rules.oneOf(claims, '/submods/container/image_digest', ctx.config.image_digests));
    // About the moment of checking, not one claim: the reason names no claim (null).
    if (ctx.verificationTime >= 2_000_000_000n) report.fail(null, 'the agreement ended at 2000000000');
    if (ctx.config.vault_role !== null) report.role(ctx.config.vault_role);
    return report.verdict();
  },
});
