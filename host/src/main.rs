//! The `attestgate` command line: argument parsing, output and exit codes. All the work happens in
//! the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// Keeps glibc from holding on to large freed buffers. Loading a plugin reads its wasm and any
/// artifact whole (megabytes for an interpreter plugin) and frees them once compiled; glibc then
/// raises its mmap threshold and serves the next such buffer from the heap, which keeps it after
/// `free`. With a fixed threshold every large buffer is its own mapping, returned when freed:
/// a process holding ten collaborators' plugins measured 29.8 MB resident instead of 43.3 MB
/// (BENCHMARKS.md, "Hot paths against their floors").
fn release_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

fn main() -> ExitCode {
    release_large_buffers();
    let args = cli::Cli::parse();
    cli::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return cli::Exit::Operational.into();
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {}", attestgate::error_chain(e.as_ref()));
            cli::Exit::Operational.into()
        }
    }
}
