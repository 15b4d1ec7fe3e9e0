//! A 1 MiB stack for this plugin, instead of the 64 KiB the plugins' cargo configuration gives
//! every plugin. regorus is a tree-walking interpreter: each level of rule or function a policy
//! calls through costs a few KiB of stack, so 64 KiB ran out at about 20 nested levels (measured),
//! which a policy built from helper rules can reach. The stack sits below the data (stack-first),
//! so running out is an out-of-bounds trap, a deny, never corrupted memory; this only makes room.
//! The cost is per-call memory reset: the touched top of the stack lies outside the pool's
//! resident window, a few µs against the ~1 ms a Rego evaluation takes.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // Given after the configuration's `-zstack-size=65536`, so it is the one that counts.
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=1048576");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
