#!/usr/bin/env bash
# The test command (README): every test, PostgreSQL and a real browser included.
# Installs Chromium and its WebDriver if missing (Debian packages, for the dashboard's
# browser tests), starts a throwaway PostgreSQL (scripts/pg.sh), runs `cargo test
# --workspace --locked` against it with MACVAULT_REQUIRE_PG=1 and
# MACVAULT_REQUIRE_BROWSER=1 (so a missing server or browser fails instead of
# skipping), and stops it whatever happens. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromedriver >/dev/null 2>&1; then
    as_root=()
    [ "$(id -u)" = 0 ] || as_root=(sudo)
    if command -v apt-get >/dev/null 2>&1; then
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" apt-get install -y -qq chromium chromium-driver
    else
        echo "scripts/test.sh: the browser tests need Chromium and chromedriver" >&2
        exit 1
    fi
fi
export MACVAULT_REQUIRE_BROWSER=1

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
