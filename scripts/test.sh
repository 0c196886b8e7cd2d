#!/usr/bin/env bash
# The test command (README): every test, PostgreSQL included. Starts a throwaway
# PostgreSQL (scripts/pg.sh), runs `cargo test --workspace --locked` against it with
# MACVAULT_REQUIRE_PG=1 (so a missing server fails instead of skipping), and stops it
# whatever happens. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

MACVAULT_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/macvault-pg.XXXXXX")
export MACVAULT_PG_DIR
trap 'scripts/pg.sh stop' EXIT
scripts/pg.sh start
MACVAULT_TEST_DATABASE_URL=$(scripts/pg.sh url)
export MACVAULT_TEST_DATABASE_URL
export MACVAULT_REQUIRE_PG=1
# The CA of the server's TLS certificate, for the TLS test (absent without openssl).
MACVAULT_TEST_PG_CA=$(scripts/pg.sh ca || true)
export MACVAULT_TEST_PG_CA
cargo test --workspace --locked "$@"
