// Builds every JavaScript plugin in this folder (each `NAME/policy.js`) into a WebAssembly
// component at `<repo>/target/plugins/js/NAME_js.wasm`, against wit/policy.wit (world `plugin`).
//
// Why a script and not the componentize-js command line: the engine features are a security
// decision, so they are written down here once. The host links WASI with every capability empty,
// and never links wasi:http, so:
// - `http` and `fetch-event` are disabled: a component importing wasi:http would not instantiate;
// - `random` is disabled: no rule needs it, and Math.random() stays deterministic (seeded in the
//   build snapshot);
// - `clocks` stays: with it, Date.now() reads the host's wall clock, which the host freezes at the
//   verification time; without it Date.now() would silently return the moment of the build;
// - `stdio` stays: an uncaught error's message and stack reach the host's capped log through it.
// After each build the component's import names are read from its binary and checked, so a
// toolchain upgrade that brings back wasi:http or wasi:sockets fails here rather than at the
// operator's first start.
//
// Usage: node build.mjs [NAME...]   (default: every folder with a policy.js)

import { componentize } from '@bytecodealliance/componentize-js';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const wit = join(root, 'wit', 'policy.wit');
const outDir = join(root, 'target', 'plugins', 'js');

const DISABLED_FEATURES = ['http', 'fetch-event', 'random'];
const FORBIDDEN_IMPORTS = ['wasi:http/', 'wasi:sockets/'];

// The names a component imports, from its top-level import sections (component binary format:
// section id 10, a vector of (name, externdesc)). Throws on anything it cannot read, so the check
// above can never pass by not looking.
function componentImports(bytes) {
  let at = 8; // magic and version/layer
  const u32 = () => {
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      const b = bytes[at++];
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
    }
  };
  const name = () => {
    const len = u32();
    const text = Buffer.from(bytes.subarray(at, at + len)).toString('utf8');
    at += len;
    return text;
  };
  const names = [];
  while (at < bytes.length) {
    const id = bytes[at++];
    const size = u32();
    const end = at + size;
    if (id === 10) {
      for (let n = u32(); n > 0; n -= 1) {
        const kind = bytes[at++];
        if (kind !== 0x00 && kind !== 0x01) throw new Error(`unreadable import name (0x${kind.toString(16)})`);
        names.push(name());
        const sort = bytes[at++];
        if (sort === 0x00) at += 1; // core module: 0x11 then a type index
        else if (sort === 0x03) { if (bytes[at++] !== 0x00) continue; } // type bound: eq idx / sub resource
        else if (sort !== 0x01 && sort !== 0x04 && sort !== 0x05) {
          throw new Error(`unreadable import ${names.at(-1)} (sort 0x${sort.toString(16)})`);
        }
        u32(); // the type index
      }
    }
    at = end;
  }
  return names;
}

const names = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(here).filter((d) => existsSync(join(here, d, 'policy.js'))).sort();

mkdirSync(outDir, { recursive: true });
let failed = 0;
for (const name of names) {
  const source = join(here, name, 'policy.js');
  const out = join(outDir, `${name.replace(/-/g, '_')}_js.wasm`);
  const started = Date.now();
  try {
    const { component } = await componentize({
      sourcePath: source,
      witPath: wit,
      worldName: 'plugin',
      disableFeatures: DISABLED_FEATURES,
    });
    const imports = componentImports(component);
    const forbidden = imports.filter((i) => FORBIDDEN_IMPORTS.some((p) => i.startsWith(p)));
    if (forbidden.length > 0) {
      throw new Error(`the component imports ${forbidden.join(', ')}, which attestgate never links`);
    }
    writeFileSync(out, component);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`built ${out} (${component.length} bytes, ${seconds} s)`);
    console.log(`  imports ${imports.join(', ')}`);
  } catch (e) {
    failed += 1;
    console.error(`FAILED to build ${source}:\n${e && e.stack ? e.stack : e}`);
  }
}
process.exit(failed ? 1 : 0);
