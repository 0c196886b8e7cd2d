#!/usr/bin/env bash
# Durable `secrets set` against bare commits (benches/secrets.rs), on redb and on a
# throwaway PostgreSQL with fsync on. Prints the table the README quotes.
set -euo pipefail
cd "$(dirname "$0")/.."
MACVAULT_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/macvault-pg.XXXXXX")
export MACVAULT_PG_DIR MACVAULT_PG_DURABLE=1
trap 'scripts/pg.sh stop' EXIT
scripts/pg.sh start
MACVAULT_BENCH_DATABASE_URL=$(scripts/pg.sh url)
export MACVAULT_BENCH_DATABASE_URL
cargo bench --locked --bench secrets
