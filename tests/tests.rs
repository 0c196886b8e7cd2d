//! One integration-test binary, so the machine links once.

// Tests may unwrap (docs/STYLE.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod authz;
mod browser;
mod ci;
mod cli;
mod cli_offline;
mod common;
mod dashboard;
mod delivery;
mod e2e;
mod http_edge;
mod interop;
mod lifecycle;
mod metrics;
mod multinode;
mod names;
mod newcomer;
mod oauth;
mod oauth_clients;
mod pymacaroons;
mod reach;
mod readme;
mod secrets;
mod secrets_crash;
mod serving;
mod store_copy;
mod support;
mod third_parties;
mod token_props;
mod vectors;
