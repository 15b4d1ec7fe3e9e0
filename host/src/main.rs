//! The `attestgate` command line: argument parsing, output and exit codes. All the work happens in
//! the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
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
