//! The host side of the plugin contract, generated from `wit/policy.wit`. Only this crate's
//! plugin modules see these types; everything outside speaks [`super::Verdict`] and friends.

// Generated from the WIT, whose own comments document every item.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { "attestgate:policy/host.log": trappable },
});
