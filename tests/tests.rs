//! One integration-test binary, so the machine links once.

mod common;
mod token_props;
mod vectors;
