//! One integration-test binary, so the machine links once.

// Tests may unwrap (STYLE.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod readme;
mod token_props;
mod vectors;
