//! Property tests that repeat exactly in CI (docs/TESTING.md): with `CI` set (as
//! `.ci/run` sets it), every property test draws from one fixed seed, so a CI run and a
//! local run of `.ci/run` try the same cases and cannot pass or fail by chance. Without
//! `CI`, runs explore with a fresh seed each time. `PROPTEST_RNG_SEED` wins over both, to
//! replay a seed a run printed.
//!
//! Shared by the caveats crate's property tests and the token-level ones
//! (`tests/token_props.rs` includes this file by path).

use proptest::test_runner::{Config, RngSeed};

/// The seed every property test uses in CI.
pub const CI_SEED: u64 = 0x6d61_6376_6175_6c74; // "macvault"

/// Whether this run is CI: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A proptest configuration of `cases` cases, seeded for CI as the module says.
pub fn config(cases: u32) -> Config {
    let mut config = Config::with_cases(cases);
    if in_ci() && std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(CI_SEED);
    }
    config
}
