// Builds the minimal policy the way a careless author would: componentize-js with its default
// engine features, so the component imports wasi:http. The host test
// `plugins::a_component_importing_wasi_http_is_refused_naming_the_import` loads it to prove
// attestgate never links wasi:http. Not a plugin anyone should ship; build.mjs refuses to make it.
//
// Usage: node test/build-with-http.mjs OUT.wasm
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const { component } = await componentize({
  sourcePath: join(here, '..', 'minimal', 'policy.js'),
  witPath: join(root, 'wit', 'policy.wit'),
  worldName: 'plugin',
});
writeFileSync(process.argv[2], component);
