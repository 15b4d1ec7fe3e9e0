// Native tests of the JavaScript SDK and the confidential-space plugin (node's test runner, with
// the host import stubbed by test/register.mjs). They pin the fail-closed dispatch and the exact
// texts the Rust SDK produces; expected strings were taken from the Rust plugin's output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Claims, Report, debugString, definePolicy, field, globMatch, isSha256Digest, oidc, pointer,
  rules, versionNumber,
} from '../sdk/attestgate.js';
import { policy } from '../confidential-space/policy.js';
import { logged } from './host-stub.js';

const AT = 1900000000n;
const production = readFileSync(new URL('../../../tests/fixtures/golden/claims/production.json', import.meta.url), 'utf8');
const ctx = (config) => ({ collaborator: 'test', config: JSON.stringify(config), verificationTime: AT, vaultRole: 'test-role' });

function refusal(config) {
  try {
    policy.validateConfig(ctx(config));
  } catch (e) {
    assert.equal(typeof e, 'string', 'a refusal must be thrown as a string, or the binding traps');
    return e;
  }
  return undefined;
}

test('configuration mistakes are refused with the Rust plugin\'s messages', () => {
  const p = 'invalid plugin configuration: ';
  assert.equal(refusal({ audience: ' ' }), '"audience" must be this collaborator\'s own audience, not empty');
  assert.equal(refusal({ projects: ['x'] }), `${p}missing field \`audience\` at line 1 column 18`);
  assert.match(refusal({ audience: 'a', projcts: ['x'] }), /^invalid plugin configuration: unknown field `projcts`, expected one of `audience`, `nonces`, .* `require_memory_monitoring_disabled` at line 1 column 25$/);
  assert.equal(refusal({ audience: 'a', require_production: null }), `${p}invalid type: null, expected a boolean at line 1 column 41`);
  assert.equal(refusal({ audience: 'a', hwmodels: 'GCP' }), `${p}invalid type: string "GCP", expected a sequence at line 1 column 32`);
  assert.equal(refusal({ audience: 'a', hwmodels: ['GCP', 5] }), `${p}invalid type: integer \`5\`, expected a string at line 1 column 35`);
  assert.equal(refusal({ audience: 'a', min_swversion: '26.06' }), 'min_swversion "26.06" is not a number like "260600"');
  assert.equal(refusal({ audience: 'a', min_swversion: '99999999999999999999' }), 'min_swversion "99999999999999999999" is not a number like "260600"');
  assert.equal(refusal({ audience: 'a', image_digests: ['é\u0301\t"x'] }), 'image digest "é\\u{301}\\t\\"x" is not sha256:<64 lowercase hex> (check for stray spaces)');
  assert.equal(refusal(JSON.parse(readFileSync(new URL('../../../tests/fixtures/golden/confidential-space.json', import.meta.url), 'utf8'))), undefined);
});

test('requiring LATEST is accepted with a warning', () => {
  logged.length = 0;
  assert.equal(refusal({ audience: 'a', support_attribute: 'LATEST' }), undefined);
  assert.equal(logged.length, 1);
  assert.equal(logged[0][0], 'warn');
  assert.match(logged[0][1], /Prefer STABLE/);
});

test('the token carries the audience and nonces, as an OIDC token', () => {
  const request = policy.selectAudience(ctx({ audience: 'https://v', nonces: ['abcdefghijklmnop'] }));
  assert.deepEqual(request, { audience: 'https://v', tokenType: 'oidc', nonces: ['abcdefghijklmnop'] });
});

test('defaults: production and STABLE only; a policy that checks nothing denies', () => {
  const v = policy.evaluate(ctx({ audience: 'a' }), production);
  assert.equal(v.allow, true);
  assert.deepEqual(v.reasons.map((r) => r.claim), ['/dbgstat', '/submods/confidential_space/support_attributes']);
  assert.deepEqual(v.login, { role: null });
  const none = policy.evaluate(ctx({ audience: 'a', require_production: false, support_attribute: null }), production);
  assert.equal(none.allow, false);
  assert.deepEqual(none.reasons.map((r) => [r.claim, r.passed]), [[null, false]]);
});

test('everything that goes wrong in evaluate is a deny naming no claim', () => {
  const throwing = definePolicy({ audience: () => oidc('a'), evaluate: () => { throw new TypeError('x is undefined'); } });
  const cases = [
    [policy, { audience: 'a', projcts: [] }, production, /^invalid plugin configuration: unknown field/],
    [policy, { audience: 'a' }, '[1]', /^claims are not a JSON object$/],
    [policy, { audience: 'a' }, '{"a":', /^claims are not valid JSON: /],
    [policy, { audience: 'a' }, '{"submods":{"confidential_space":{"monitoring_enabled":{"memory":"yes"}}}}',
      /^claims are not valid JSON: invalid type: string "yes", expected a boolean at line 1 column 70$/],
    [throwing, {}, production, /^the policy failed while judging the claims: x is undefined$/],
    [definePolicy({ audience: () => oidc('a'), evaluate: () => ({ allow: true, reasons: [] }) }), {}, production, /without a failed rule/],
    [definePolicy({ audience: () => oidc('a'), evaluate: () => 'allow' }), {}, production, /returned no verdict/],
    [definePolicy({ audience: () => oidc('a'), evaluate: () => ({ allow: true, reasons: [{ passed: true, message: 7 }] }) }), {}, production, /malformed reason/],
  ];
  for (const [p, config, claims, expected] of cases) {
    const v = p.evaluate(ctx(config), claims);
    assert.equal(v.allow, false, String(expected));
    const failed = v.reasons.filter((r) => !r.passed);
    assert.ok(failed.length >= 1);
    assert.equal(failed.at(-1).claim, null);
    assert.match(failed.at(-1).message, expected);
  }
  // A hand-built allow with a failed reason is a deny, whatever `allow` says.
  const lying = definePolicy({
    audience: () => oidc('a'),
    evaluate: () => ({ allow: true, reasons: [{ claim: '/x', passed: false, message: 'no' }], login: {} }),
  });
  assert.equal(lying.evaluate(ctx({}), production).allow, false);
});

test('a refusal returned instead of thrown still refuses, and errors become strings', () => {
  const returning = definePolicy({ validate: () => 'nope', audience: () => oidc('a'), evaluate: () => new Report().verdict() });
  assert.throws(() => returning.validateConfig(ctx({})), (e) => e === 'nope');
  const throwing = definePolicy({ validate: () => { throw new Error('bad key'); }, audience: () => oidc('a'), evaluate: () => new Report().verdict() });
  assert.throws(() => throwing.validateConfig(ctx({})), (e) => e === 'bad key');
  const badAudience = definePolicy({ audience: () => ({ audience: 'a', tokenType: 'jwt' }), evaluate: () => new Report().verdict() });
  assert.throws(() => badAudience.selectAudience(ctx({})), (e) => typeof e === 'string' && /token type "jwt"/.test(e));
});

test('the verification time is a BigInt, and also a Number', () => {
  let seen;
  const p = definePolicy({ audience: () => oidc('a'), evaluate: (c) => { seen = c; return new Report().pass(null, 'ok').verdict(); } });
  p.evaluate(ctx({}), production);
  assert.equal(seen.verificationTime, AT);
  assert.equal(seen.verificationSeconds, 1900000000);
});

test('the Vault role the host logs in with reaches the policy', () => {
  let seen;
  const p = definePolicy({ audience: () => oidc('a'), evaluate: (c) => { seen = c; return new Report().pass(null, 'ok').verdict(); } });
  p.evaluate(ctx({}), production);
  assert.equal(seen.vaultRole, 'test-role');
  p.evaluate({ ...ctx({}), vaultRole: undefined }, production);
  assert.equal(seen.vaultRole, undefined);
});

test('config fields follow serde: defaults, options and nulls', () => {
  let config;
  const q = definePolicy({
    config: { a: field.string(), b: field.bool({ default: true }), c: field.string({ optional: true, default: 'S' }), d: field.strings({ optional: true }) },
    audience: () => oidc('a'),
    evaluate: (c) => { config = c.config; return new Report().verdict(); },
  });
  q.evaluate(ctx({ a: 'x' }), production);
  assert.deepEqual(config, { a: 'x', b: true, c: 'S', d: null });
  q.evaluate(ctx({ a: 'x', c: null, d: ['y'] }), production);
  assert.deepEqual(config, { a: 'x', b: true, c: null, d: ['y'] });
  assert.throws(() => q.validateConfig(ctx({ a: 'x', e: 1 })), (e) => /unknown field `e`, expected one of `a`, `b`, `c`, `d`/.test(e));
});

test('rules keep the Rust messages and pointers', () => {
  const claims = Claims.parse(production);
  assert.deepEqual(rules.oneOf(claims, 'hwmodel', ['GCP_AMD_SEV']), {
    claim: '/hwmodel', passed: false, message: '["GCP_INTEL_TDX"] is not one of ["GCP_AMD_SEV"]',
  });
  assert.equal(rules.oneOf(claims, 'nope', ['a']).message, 'claim "nope" is missing; allowed: ["a"]');
  assert.equal(rules.containsAny(claims, 'google_service_accounts', ['x']).message,
    '["workload-sa@operator-project.iam.gserviceaccount.com"] does not contain any of ["x"]');
  assert.equal(rules.minSwversion(claims, '270000').message, 'swversion ["260900"] is below the minimum 270000');
  assert.equal(rules.minSwversion(claims, 'x').message, 'the minimum swversion "x" is not a number');
  const amd = Claims.parse('{"hwmodel":"GCP_AMD_SEV"}');
  assert.equal(rules.tdxUpToDate(amd).message, 'not a TDX machine (hwmodel Some("GCP_AMD_SEV")); TCB status does not apply');
  assert.equal(rules.tdxUpToDate(Claims.parse('{}')).message, 'not a TDX machine (hwmodel None); TCB status does not apply');
  assert.equal(rules.productionOnly(Claims.parse('{}')).message, 'dbgstat is missing; a production image is required');
  assert.equal(rules.supportAttribute(Claims.parse('{"submods":{}}'), 'STABLE').message,
    'support_attributes is absent (as on debug images); "STABLE" is required');
  assert.equal(rules.memoryMonitoringDisabled(Claims.parse('{}')).message, 'memory monitoring status is missing');
});

test('claims are read leniently, as the Rust reader does', () => {
  const claims = Claims.parse(`{"hwmodel":"GCP_INTEL_TDX","swversion":["260900"],"aud":"a","eat_nonce":["n1","n2"],
    "tdx":[{"gcp_attester_tcb_status":"UpToDate"}],"submods":{"confidential_space":null,
    "container":{"image_signatures":[{"key_id":"k1"},7],"image_digest":5},"gce":"oops"},"extra":{"x":[1]}}`);
  assert.equal(claims.hwmodel(), 'GCP_INTEL_TDX');
  assert.deepEqual(claims.nonces(), ['n1', 'n2']);
  assert.equal(claims.tdxTcbStatus(), 'UpToDate');
  assert.equal(claims.supportAttributes(), undefined);
  assert.equal(claims.imageDigest(), undefined);
  assert.equal(claims.projectId(), undefined);
  assert.equal(claims.imageSignatures()[0].keyId, 'k1');
  assert.equal(claims.pointer('/extra/x/0'), 1);
  assert.deepEqual(claims.strings('/submods/container/image_digest'), []);
  assert.equal(Claims.parse('{"sub":"a\\/b \\u00e9"}').subject(), 'a/b é');
});

test('text helpers match Rust', () => {
  assert.equal(debugString('\u00a0x\u200b'), '"\\u{a0}x\\u{200b}"');
  assert.equal(debugString('it\'s "q" \\ \0'), '"it\'s \\"q\\" \\\\ \\0"');
  assert.equal(pointer('hwmodel'), '/hwmodel');
  assert.equal(pointer('a/b~c'), '/a~1b~0c');
  assert.equal(pointer('/submods/gce/project_id'), '/submods/gce/project_id');
  assert.ok(globMatch('operator-*', 'operator-project'));
  assert.ok(globMatch('*@*.iam.gserviceaccount.com', 'a@b.iam.gserviceaccount.com'));
  assert.ok(!globMatch('operator-*', 'other-project'));
  assert.ok(isSha256Digest(`sha256:${'a'.repeat(64)}`));
  assert.ok(!isSha256Digest(`sha256:${'a'.repeat(64)} `));
  assert.equal(versionNumber(' +260600 '), 260600n);
  assert.equal(versionNumber('18446744073709551616'), undefined);
  assert.equal(versionNumber('\ufeff1'), undefined);
});

test('claims named like Object properties are ordinary claims, and async evaluate denies', () => {
  const claims = Claims.parse('{"constructor":"x","__proto__":["y"]}');
  assert.deepEqual(claims.strings('constructor'), ['x']);
  assert.deepEqual(claims.strings('/__proto__'), ['y']);
  const asyncPolicy = definePolicy({ audience: () => oidc('a'), evaluate: async () => new Report().pass(null, 'ok').verdict() });
  const v = asyncPolicy.evaluate(ctx({}), production);
  assert.equal(v.allow, false);
  assert.match(v.reasons[0].message, /must be synchronous/);
});
