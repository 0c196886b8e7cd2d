#!/usr/bin/env bash
# The README's lifecycle runbooks, run as written against a fresh server: needs
# `macvault` on PATH.
set -euo pipefail
export MACVAULT_URL=${MACVAULT_URL:-http://127.0.0.1:7070}
data=$(mktemp -d)
expect_no() { if "$@"; then echo "expected a refusal" >&2; exit 1; fi; }
umask 077
serve() {
    macvault serve --listen "${MACVAULT_URL#http://}" --data-dir "$data" > "$data/$1.log" &
    server=$!
    for _ in $(seq 100); do grep -q "listening on" "$data/$1.log" && break; sleep 0.1; done
}
serve first
trap 'kill $server 2>/dev/null || true' EXIT
macvault orgs create acme --token-file "$data/operator.token" > admin.token
macvault apps create web --token-file admin.token
macvault tokens create deploy --app web --name ci --id-file ci.id --token-file admin.token > ci.token

# --- Rotating a token (say, the one in CI) ---------------------------------------
# 1. Its id: written by --id-file when it was minted (`tokens list` shows it too; 8 or
#    more hex digits of it will do).
ci=$(cat ci.id)
# 2. Mint the replacement; the old token keeps working for the overlap. Tokens the old
#    one minted move under the new one (revoking the old one no longer takes them).
macvault tokens rotate "$ci" --overlap 1h --id-file ci-new.id --token-file admin.token > ci-new.token
# 3. Put ci-new.token where the old one was (the CI secret), and check it works.
macvault tokens verify --token-file ci-new.token --app web --resource secrets --action write
# 4. Once CI runs with it, end the old token now rather than at the end of the overlap.
macvault tokens revoke "$ci" --token-file admin.token
expect_no macvault tokens verify --token-file ci.token

# --- Recovering an org -------------------------------------------------------------
# Its last org token expired or was revoked: the operator issues a new one. (Revoking
# an org token takes the tokens it minted, ci-new among them, unless --orphan; revoke
# lists them first and asks, or wants --yes.)
macvault tokens revoke --self --orphan --token-file admin.token
macvault orgs token acme --expiry 30d --token-file "$data/operator.token" > admin.token
macvault orgs show --token-file admin.token
macvault tokens verify --token-file ci-new.token --app web --resource secrets --action write
# The operator token itself was lost or leaked: with the master key (in the data
# directory), issue a new one offline; every earlier one is revoked, and the org
# tokens they issued live on. An embedded server must be stopped for it.
kill "$server"; wait "$server" || true
macvault operator-token --data-dir "$data"
serve second
macvault orgs list --token-file "$data/operator.token"
macvault orgs show --token-file admin.token
