#!/usr/bin/env bash
# The README tour: needs `macvault` on PATH (`cargo install --path .`, or
# `export PATH=$PWD/target/release:$PATH` after `cargo build --release`).
set -euo pipefail
export MACVAULT_URL=${MACVAULT_URL:-http://127.0.0.1:7070}
data=$(mktemp -d)
expect_no() { if "$@"; then echo "expected a refusal" >&2; exit 1; fi; }
umask 077 # the token files below: readable by their owner only, like ssh keys

# 1. Serve, on a fresh data directory (in the background for this tour).
macvault serve --listen "${MACVAULT_URL#http://}" --data-dir "$data" > "$data/serve.log" &
trap 'kill $!' EXIT
for _ in $(seq 100); do grep -q "listening on" "$data/serve.log" && break; sleep 0.1; done

# 2. Create an org with the operator token (the first start wrote it to a file).
macvault orgs create acme --token-file "$data/operator.token" > acme.token

# 3. Create the app `web`, and mint a deploy token for it (the org is the presenting
#    token's; an app name the org does not have is refused, so a typo creates nothing).
macvault apps create web --token-file acme.token
macvault tokens create deploy --app web --name ci --expiry 30d --token-file acme.token > ci.token

# 4. Narrow it offline to read-only for one hour, and look at it.
macvault tokens attenuate --read-only --expiry 1h --token-file ci.token > readonly.token
macvault tokens inspect --token-file readonly.token

# 5. Verify it: reading web's secrets is allowed, writing them is not.
macvault tokens verify --token-file readonly.token --app web --resource secrets --action read
expect_no macvault tokens verify --token-file readonly.token --app web --resource secrets --action write

# 6. List the org's tokens: kind, status, expiry, last use.
macvault tokens list --token-file acme.token

# 7. Revoke the deploy token: it and everything attenuated from it stop working.
macvault tokens revoke --self --token-file ci.token
expect_no macvault tokens verify --token-file readonly.token
