//! The `macvault` binary: everything lives in [`macvault::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    macvault::cli::main()
}
