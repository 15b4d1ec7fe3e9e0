// Differential check: the JavaScript confidential-space plugin, run natively under node, against
// the Rust reference plugin run by `attestgate plugin test`, on many claim shapes the golden cases
// do not cover (missing, null, wrongly typed, listed, oddly escaped claims) and on configuration
// mistakes.
//
// Why natively: a JavaScript component costs about half a minute of cold compilation per
// `plugin test` run, a Rust one under a second, so hundreds of cases are affordable only this way.
// The engine inside the component is SpiderMonkey, which agrees with node on JSON and strings;
// golden.sh checks the component itself.
//
// The host hands plugins its own compact re-serialization of the configuration and the claims
// (key order kept), so the native side is given JSON.stringify(JSON.parse(text)), the same text,
// and its messages are escaped as the host escapes them for display.
//
// Environment: ATTESTGATE (default `attestgate`), RUST_PLUGIN (default
// <repo>/target/plugins/wasm32-wasip2/release/confidential_space.wasm).
// Usage: node --import ./test/register.mjs differential.mjs   (npm run differential)

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { policy } from './confidential-space/policy.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const golden = join(root, 'tests', 'fixtures', 'golden');
const attestgate = process.env.ATTESTGATE || 'attestgate';
const rustPlugin = process.env.RUST_PLUGIN ||
  join(root, 'target', 'plugins', 'wasm32-wasip2', 'release', 'confidential_space.wasm');
const AT = 1900000000;
const AUDIENCE = 'https://vault.bank-a.example';

const production = JSON.parse(readFileSync(join(golden, 'claims', 'production.json'), 'utf8'));
const goldenConfig = JSON.parse(readFileSync(join(golden, 'confidential-space.json'), 'utf8'));

// Claims: production with one change at a path (undefined deletes).
function changed(path, value) {
  const claims = structuredClone(production);
  const keys = path.split('/').slice(1);
  const last = keys.pop();
  let node = claims;
  for (const k of keys) node = node[k];
  if (value === undefined) delete node[last];
  else node[last] = value;
  return claims;
}

const SA = '/submods/confidential_space/support_attributes';
const MEM = '/submods/confidential_space/monitoring_enabled/memory';
const claimCases = [
  ['production', production],
  ...[undefined, null, 5, 'enabled', ['disabled-since-boot']].map((v) => [`dbgstat ${JSON.stringify(v)}`, changed('/dbgstat', v)]),
  ...[undefined, null, [], 'STABLE', 5, { a: 1 }, ['LATEST', 5, ['STABLE']]].map((v) => [`support ${JSON.stringify(v)}`, changed(SA, v)]),
  ...[undefined, 'GCP_AMD_SEV', ['GCP_INTEL_TDX'], 7, 'x"y\\z\u0001é\u0301'].map((v) => [`hwmodel ${JSON.stringify(v)}`, changed('/hwmodel', v)]),
  ['swname list', changed('/swname', ['GCE', 'CONFIDENTIAL_SPACE'])],
  ['image digest number', changed('/submods/container/image_digest', 5)],
  ['submods as list', changed('/submods', [production.submods, {}])],
  ['submods string', changed('/submods', 'oops')],
  ['submods null', changed('/submods', null)],
  ['gce as list', changed('/submods/gce', [production.submods.gce])],
  ['gce string', changed('/submods/gce', 'x')],
  ['project null', changed('/submods/gce/project_id', null)],
  ['project list', changed('/submods/gce/project_id', ['x', 'operator-project'])],
  ...['workload-sa@operator-project.iam.gserviceaccount.com', [], [5]].map((v) => [`accounts ${JSON.stringify(v)}`, changed('/google_service_accounts', v)]),
  ...['260900', ['abc'], [' 260600 '], ['+260600'], ['99999999999999999999'], ['250000', '270000'], [], 260900, ['26.09']]
    .map((v) => [`swversion ${JSON.stringify(v)}`, changed('/swversion', v)]),
  ['tdx list', changed('/tdx', [production.tdx])],
  ['tdx missing', changed('/tdx', undefined)],
  ['tdx status number', changed('/tdx', { gcp_attester_tcb_status: 5 })],
  ['tdx string', changed('/tdx', 'x')],
  ['tdx status odd', changed('/tdx', { gcp_attester_tcb_status: 'Out"Of\nDate' })],
  ['amd without tdx', { ...changed('/tdx', undefined), hwmodel: 'GCP_AMD_SEV' }],
  ['hwmodel missing without tdx', { ...changed('/tdx', undefined), hwmodel: undefined }],
  ...[undefined, null, true, 'yes', 1].map((v) => [`memory ${JSON.stringify(v)}`, changed(MEM, v)]),
  ['monitoring as list', changed('/submods/confidential_space/monitoring_enabled', [{ memory: false }])],
  ['monitoring list of wrong memory', changed('/submods/confidential_space/monitoring_enabled', [{ memory: 'no' }])],
  ...[null, 'x', [1, { key_id: 'k' }]].map((v) => [`signatures ${JSON.stringify(v)}`, changed('/submods/container/image_signatures', v)]),
  ['memory and signatures both wrong', changed('/submods/container/image_signatures', 'x')],
  ['unicode everywhere', { ...production, extra: { '\u2028': ['\ud83d\ude00'] }, swname: 'CONFIDENTIAL_SPACE\u00a0' }],
];
// The "both wrong" case needs both changes.
claimCases.find(([n]) => n === 'memory and signatures both wrong')[1].submods.confidential_space.monitoring_enabled.memory = 0;

const configCases = [
  ['golden', goldenConfig],
  ['defaults', { audience: AUDIENCE }],
  ['relaxed', { audience: AUDIENCE, require_production: false, support_attribute: null }],
  ['odd lists', { audience: AUDIENCE, hwmodels: [], swnames: ['x\u0301"'], min_swversion: ' 260600', vault_role: 'r' }],
  ['latest', { audience: AUDIENCE, support_attribute: 'LATEST', nonces: ['abcdefghijklmnop'] }],
];
const badConfigs = [
  { audience: ' ' }, { audience: '\u3000' }, { audience: 'a', projcts: [] }, { projects: ['x'] },
  { audience: 'a', image_digests: ['sha256:' + 'A'.repeat(64)] }, { audience: 'a', min_swversion: '-1' },
  { audience: 'a', require_tdx_uptodate: 'yes' }, { audience: 'a', nonces: null }, { audience: 'a', nonces: [null] },
  { audience: 'a', hwmodels: { a: 1 } }, { audience: 'a', vault_role: 1.5 }, { audience: ['a'] }, 'x', 5, null,
  { zeta: 1, audience: 'a' }, { audience: 'a', min_swversion: '+18446744073709551615' },
  { audience: 'a', min_swversion: '18446744073709551616' }, { hwmodels: 7 },
];

const work = mkdtempSync(join(tmpdir(), 'attestgate-diff-'));

function rust(config, claims) {
  writeFileSync(join(work, 'config.json'), JSON.stringify(config));
  writeFileSync(join(work, 'claims.json'), JSON.stringify(claims));
  const p = spawnSync(attestgate, ['plugin', 'test', rustPlugin, '--claims', join(work, 'claims.json'),
    '--plugin-config', join(work, 'config.json'), '--at', String(AT), '--format', 'json'], { encoding: 'utf8' });
  const out = JSON.parse(p.stdout);
  if (out.error) {
    const m = /returned an error: ([\s\S]*)$/.exec(out.error);
    return { error: m ? m[1] : out.error };
  }
  return { audience: out.audience, allow: out.allow, reasons: out.reasons, role: out.login.role ?? null };
}

// The host shows plugin text with control characters escaped (Rust's `escape_default`), so a
// newline in a claim cannot forge a log line; the native side gets the same treatment.
const CONTROL_ESCAPES = { '\t': '\\t', '\r': '\\r', '\n': '\\n' };
function asHostShows(text) {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g,
    (c) => CONTROL_ESCAPES[c] ?? `\\u{${c.charCodeAt(0).toString(16)}}`);
}

function native(config, claims) {
  const ctx = { collaborator: 'test', config: JSON.stringify(config), verificationTime: BigInt(AT), vaultRole: undefined };
  try {
    policy.validateConfig(ctx);
    const a = policy.selectAudience(ctx);
    const v = policy.evaluate(ctx, JSON.stringify(claims));
    return {
      audience: { audience: a.audience, token_type: a.tokenType.toUpperCase(), ...(a.nonces.length ? { nonces: a.nonces } : {}) },
      allow: v.allow,
      reasons: v.reasons.map((r) => ({ ...r, message: asHostShows(r.message) })),
      role: v.login.role,
    };
  } catch (e) {
    return { error: asHostShows(e) };
  }
}

let passed = 0;
let failed = 0;
function check(name, config, claims) {
  const a = JSON.stringify(native(config, claims));
  const b = JSON.stringify(rust(config, claims));
  if (a === b) {
    passed += 1;
  } else {
    failed += 1;
    console.log(`DIFFERS  ${name}\n   js:   ${a}\n   rust: ${b}`);
  }
}

try {
  for (const [cn, config] of configCases.slice(0, 2)) {
    for (const [name, claims] of claimCases) check(`${cn} / ${name}`, config, claims);
  }
  for (const [cn, config] of configCases.slice(2)) check(`${cn} / production`, config, production);
  for (const config of badConfigs) check(`config ${JSON.stringify(config)}`, config, production);
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
