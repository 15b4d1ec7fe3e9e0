//! The host side of the plugin contract, generated from `wit/policy.wit`. Only this crate's
//! plugin modules see these types; everything outside speaks [`super::Verdict`] and friends.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { "attestgate:policy/host.log": trappable },
});
