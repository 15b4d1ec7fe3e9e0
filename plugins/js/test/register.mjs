// `node --import ./test/register.mjs …` installs the hook that lets plugins run natively.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
