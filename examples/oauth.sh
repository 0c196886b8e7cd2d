#!/usr/bin/env bash
# The README's OAuth walk-through, run as written against a fresh server: needs
# `macvault`, `curl` and `openssl` on PATH.
set -euo pipefail
export MACVAULT_URL=${MACVAULT_URL:-http://127.0.0.1:7070}
data=$(mktemp -d)
umask 077
macvault serve --listen "${MACVAULT_URL#http://}" --data-dir "$data" > "$data/serve.log" &
trap 'kill $! 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "listening on" "$data/serve.log" && break; sleep 0.1; done
macvault orgs create acme --token-file "$data/operator.token" > admin.token
export MACVAULT_TOKEN_FILE=admin.token
macvault apps create web
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -1; }

# An org admin registers the integration (a CLI here: public, loopback redirect).
client=$(macvault oauth-clients add "Deploy bot" --public --redirect-uri http://127.0.0.1/cb)
# The integration finds the endpoints and sends the person to authorize, with PKCE.
curl -s "$MACVAULT_URL/.well-known/oauth-authorization-server"; echo
verifier=$(openssl rand -hex 32)
challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
redirect=http://127.0.0.1:8123/cb
query="response_type=code&client_id=$client&redirect_uri=$redirect&scope=secrets:read+app:web"
query="$query&state=s1&code_challenge=$challenge&code_challenge_method=S256"

# What the person's browser does: sign in to the dashboard, read the consent page,
# approve (they could narrow it first), and come back to the redirect URI with a code.
consent=$(curl -s -o /dev/null -w '%{redirect_url}' "$MACVAULT_URL/oauth/authorize?$query")
curl -s -o /dev/null -c jar --data-urlencode "token=$(cat admin.token)" \
  --data-urlencode "next=${consent#"$MACVAULT_URL"}" "$MACVAULT_URL/ui/sign-in"
csrf=$(curl -s -b jar "$consent" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
back=$(curl -s -o /dev/null -b jar -w '%{redirect_url}' --data "$query&csrf=$csrf" \
  -d decision=approve -d keep=secrets:read -d keep=app:web "$MACVAULT_URL/ui/consent")
code=${back#*code=}; code=${code%%&*}

# The integration trades the code for an access token (an hour) and a refresh token.
tokens=$(curl -s -d grant_type=authorization_code -d "client_id=$client" -d "code=$code" \
  -d "redirect_uri=$redirect" -d "code_verifier=$verifier" "$MACVAULT_URL/oauth/token")
access=$(field access_token <<< "$tokens"); refresh=$(field refresh_token <<< "$tokens")
macvault secrets list --app web --token "$access"
macvault tokens inspect --token "$access"
# Refreshing rotates the refresh token; the person sees and can revoke the grant.
tokens=$(curl -s -d grant_type=refresh_token -d "client_id=$client" \
  -d "refresh_token=$refresh" "$MACVAULT_URL/oauth/token")
macvault oauth-grants list
grant=$(macvault oauth-grants list --json | field id)
macvault oauth-grants revoke "$grant"
if macvault secrets list --app web --token "$(field access_token <<< "$tokens")"; then exit 1; fi
