//! The `macvault` binary: everything lives in [`macvault::cli`].

use std::process::ExitCode;

// The server allocates a few small buffers per request; mimalloc serves them faster
// than the system allocator (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    macvault::cli::main()
}
