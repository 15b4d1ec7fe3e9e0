//! A 1 MiB stack for this plugin, instead of the 64 KiB the plugins' cargo configuration gives
//! every plugin. The CEL parsers recurse once per nested bracket or conditional, so 64 KiB ran
//! out at under 200 levels (measured), below the 249 that OpenBao stores: such a role was a trap
//! here, a deny where the Vault would let the token in. Deeper programs are refused by the
//! role's checks before any parser runs; whatever still outgrows the stack traps, a deny, never
//! corrupted memory (the stack sits below the data). The cost is the per-call memory reset of the touched
//! top of the stack, a few µs against the ~1 ms a CEL evaluation takes.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        // Given after the configuration's `-zstack-size=65536`, so it is the one that counts.
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=1048576");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
