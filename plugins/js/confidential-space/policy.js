// The rules a careful collaborator wants of a Confidential Space workload, each configurable,
// written in JavaScript.
//
// Why a second implementation: it is the proof that a JavaScript plugin decides exactly as the
// Rust reference plugin (plugins/confidential-space) does. It takes the same configuration keys
// with the same defaults and refusals, and gives the same verdicts, failed claim pointers and
// messages; golden.sh checks that case by case against the Rust plugin's output.
//
// An absent list means no restriction; every other rule is on unless switched off.

import {
  definePolicy,
  field,
  isSha256Digest,
  log,
  oidc,
  debugString,
  Report,
  rules,
  rustTrim,
  versionNumber,
} from '../sdk/attestgate.js';

// Declaration order matters: it is the order a refused unknown key lists the expected ones in.
const config = {
  // The collaborator's own audience (typically its Vault address).
  audience: field.string(),
  // Nonces bound into the token.
  nonces: field.strings({ default: [] }),
  // Handed to the exchange as the Vault role, when set.
  vault_role: field.string({ optional: true }),
  require_production: field.bool({ default: true }),
  // `null` switches the rule off.
  support_attribute: field.string({ optional: true, default: 'STABLE' }),
  hwmodels: field.strings({ optional: true }),
  swnames: field.strings({ optional: true }),
  image_digests: field.strings({ optional: true }),
  projects: field.strings({ optional: true }),
  service_accounts: field.strings({ optional: true }),
  min_swversion: field.string({ optional: true }),
  require_tdx_uptodate: field.bool({ default: false }),
  require_memory_monitoring_disabled: field.bool({ default: false }),
};

export const policy = definePolicy({
  config,

  validate(c) {
    if (rustTrim(c.audience) === '') {
      throw '"audience" must be this collaborator\'s own audience, not empty';
    }
    const digest = (c.image_digests || []).find((d) => !isSha256Digest(d));
    if (digest !== undefined) {
      throw `image digest ${debugString(digest)} is not sha256:<64 lowercase hex> (check for stray spaces)`;
    }
    if (c.min_swversion !== null && versionNumber(c.min_swversion) === undefined) {
      throw `min_swversion ${debugString(c.min_swversion)} is not a number like "260600"`;
    }
    if (c.support_attribute === 'LATEST') {
      log(
        'warn',
        'support_attribute LATEST drops off about a month after release; long-running workloads will start failing. Prefer STABLE.',
      );
    }
  },

  audience: (ctx) => oidc(ctx.config.audience, ctx.config.nonces),

  evaluate(ctx, claims) {
    const c = ctx.config;
    const report = new Report();
    if (c.require_production) report.add(rules.productionOnly(claims));
    if (c.support_attribute !== null) report.add(rules.supportAttribute(claims, c.support_attribute));
    const lists = [
      ['hwmodel', c.hwmodels],
      ['swname', c.swnames],
      ['/submods/container/image_digest', c.image_digests],
      ['/submods/gce/project_id', c.projects],
      ['google_service_accounts', c.service_accounts],
    ];
    for (const [key, allowed] of lists) {
      if (allowed !== null) report.add(rules.oneOf(claims, key, allowed));
    }
    if (c.min_swversion !== null) report.add(rules.minSwversion(claims, c.min_swversion));
    if (c.require_tdx_uptodate) report.add(rules.tdxUpToDate(claims));
    if (c.require_memory_monitoring_disabled) report.add(rules.memoryMonitoringDisabled(claims));
    if (c.vault_role !== null) report.role(c.vault_role);
    return report.verdict();
  },
});
