// Module resolution hook: maps the contract's import `attestgate:policy/host@…` to the stub, so the
// SDK and plugins run unchanged under node.
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('attestgate:policy/host@')) {
    return { url: new URL('./host-stub.js', import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
