#!/usr/bin/env bash
# The README tour: needs `macvault` on PATH (`cargo install --path .`, or
# `export PATH=$PWD/target/release:$PATH` after `cargo build --release`).
set -euo pipefail
export MACVAULT_URL=${MACVAULT_URL:-http://127.0.0.1:7070}
data=$(mktemp -d)
expect_no() { if "$@"; then echo "expected a refusal" >&2; exit 1; fi; }

# 1. Serve, on a fresh data directory (in the background for this tour).
macvault serve --listen "${MACVAULT_URL#http://}" --data-dir "$data" > "$data/serve.log" &
trap 'kill $!' EXIT
for _ in $(seq 100); do grep -q "listening on" "$data/serve.log" && break; sleep 0.1; done

# 2. Create an org with the operator token; this prints an org token for it.
ORG_TOKEN=$(macvault --token "$(cat "$data/operator.token")" orgs create acme)

# 3. Mint a deploy token for the app `web`.
DEPLOY=$(macvault --token "$ORG_TOKEN" tokens create deploy --org acme --app web --name ci --expiry 30d)

# 4. Narrow it offline to read-only for one hour, and look at it.
READONLY=$(macvault tokens attenuate --token "$DEPLOY" --read-only --expiry 1h)
macvault tokens inspect "$READONLY"

# 5. Verify it: reading web's secrets is allowed, writing them is not.
macvault tokens verify "$READONLY" --org acme --app web --resource secrets --action read
expect_no macvault tokens verify "$READONLY" --org acme --app web --resource secrets --action write

# 6. List the org's tokens: names, kinds, expiry, last use.
macvault --token "$ORG_TOKEN" tokens list --org acme

# 7. Revoke the deploy token: it and everything attenuated from it stop working.
macvault --token "$DEPLOY" tokens revoke --self
expect_no macvault tokens verify "$READONLY"
