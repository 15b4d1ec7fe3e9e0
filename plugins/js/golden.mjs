// Golden cases for the JavaScript confidential-space plugin.
//
// Why: the JavaScript plugin must decide exactly as the Rust reference plugin. For every case in
// tests/fixtures/golden/cases.json this runs `attestgate plugin test --format json` on the built
// component and checks the verdict (and that the exit code agrees with it), the exact set of
// failed claim pointers, and on an allow the Vault role; then it runs the Rust plugin on the same
// case and requires the same reasons, in the same order, with byte-identical messages.
//
// Environment:
//   ATTESTGATE   the attestgate binary (default: `attestgate` on PATH)
//   JS_PLUGIN    the component under test (default: <repo>/target/plugins/js/confidential_space_js.wasm)
//   RUST_PLUGIN  the Rust reference (default: <repo>/target/plugins/wasm32-wasip2/release/
//                confidential_space.wasm); when it does not exist the comparison is skipped, and
//                said so.
//   PLUGIN_ARGS  extra arguments for `plugin test`, such as `--deadline-ms 200`
//
// Ends with a line `N passed, N failed` and exits 1 when any case failed.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const golden = join(root, 'tests', 'fixtures', 'golden');
const attestgate = process.env.ATTESTGATE || 'attestgate';
const jsPlugin = process.env.JS_PLUGIN || join(root, 'target', 'plugins', 'js', 'confidential_space_js.wasm');
const rustPlugin = process.env.RUST_PLUGIN ||
  join(root, 'target', 'plugins', 'wasm32-wasip2', 'release', 'confidential_space.wasm');
const extra = (process.env.PLUGIN_ARGS || '').split(/\s+/).filter(Boolean);

const suite = JSON.parse(readFileSync(join(golden, 'cases.json'), 'utf8'));

if (!existsSync(jsPlugin)) {
  console.error(`no component at ${jsPlugin}: build it first (cd plugins/js && npm run build)`);
  process.exit(2);
}
const compare = existsSync(rustPlugin);
if (!compare) {
  console.log(`note: no Rust plugin at ${rustPlugin}; messages are not compared (set RUST_PLUGIN)`);
}

// One `plugin test` run: the parsed JSON and the exit code, or a failure explained.
function run(plugin, c) {
  const args = [
    'plugin', 'test', plugin,
    '--claims', join(golden, c.claims),
    '--plugin-config', join(golden, 'confidential-space.json'),
    '--at', String(suite.at),
    '--audience', suite.audience,
    '--format', 'json',
    ...extra,
  ];
  const started = process.hrtime.bigint();
  const p = spawnSync(attestgate, args, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (p.error) throw new Error(`cannot run ${attestgate}: ${p.error.message}`);
  let out;
  try {
    out = JSON.parse(p.stdout);
  } catch {
    throw new Error(`exit ${p.status}, no JSON verdict; stderr: ${p.stderr.trim()}`);
  }
  if (out.error) throw new Error(`exit ${p.status}: ${out.failure}: ${out.error}`);
  return { out, code: p.status, ms };
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

let passed = 0;
let failed = 0;
for (const c of suite.cases) {
  const problems = [];
  let timing = '';
  try {
    const js = run(jsPlugin, c);
    timing = `plugin test ${(js.ms / 1000).toFixed(1)} s, evaluate ${(js.out.duration_us / 1000).toFixed(1)} ms`;
    const verdict = js.out.allow ? 'allow' : 'deny';
    if (verdict !== c.expect) problems.push(`verdict ${verdict}, expected ${c.expect}`);
    if (js.code !== (js.out.allow ? 0 : 1)) problems.push(`exit code ${js.code} for ${verdict}`);
    const failedClaims = js.out.reasons.filter((r) => !r.passed).map((r) => r.claim).sort();
    const expected = [...c.failed_claims].sort();
    if (!same(failedClaims, expected)) {
      problems.push(`failed claims ${JSON.stringify(failedClaims)}, expected ${JSON.stringify(expected)}`);
    }
    if (js.out.allow && suite.role && js.out.login.role !== suite.role) {
      problems.push(`Vault role ${JSON.stringify(js.out.login.role)}, expected ${JSON.stringify(suite.role)}`);
    }
    if (compare) {
      const rust = run(rustPlugin, c);
      timing += `; Rust ${(rust.ms / 1000).toFixed(1)} s, ${(rust.out.duration_us / 1000).toFixed(1)} ms`;
      const a = js.out.reasons;
      const b = rust.out.reasons;
      if (a.length !== b.length) problems.push(`${a.length} reasons, the Rust plugin gives ${b.length}`);
      for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
        for (const key of ['claim', 'passed', 'message']) {
          if (a[i][key] !== b[i][key]) {
            problems.push(`reason ${i} ${key}: JS ${JSON.stringify(a[i][key])}, Rust ${JSON.stringify(b[i][key])}`);
          }
        }
      }
      if (js.out.allow !== rust.out.allow) problems.push('the Rust plugin decides otherwise');
      if (JSON.stringify(js.out.login) !== JSON.stringify(rust.out.login)) {
        problems.push(`login ${JSON.stringify(js.out.login)}, Rust ${JSON.stringify(rust.out.login)}`);
      }
      if (JSON.stringify(js.out.audience) !== JSON.stringify(rust.out.audience)) {
        problems.push(`audience ${JSON.stringify(js.out.audience)}, Rust ${JSON.stringify(rust.out.audience)}`);
      }
    }
  } catch (e) {
    problems.push(e.message);
  }
  if (problems.length === 0) {
    passed += 1;
    console.log(`ok    ${c.case} (${c.expect}; ${timing})`);
  } else {
    failed += 1;
    console.log(`FAIL  ${c.case}\n${problems.map((p) => `        ${p}`).join('\n')}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
