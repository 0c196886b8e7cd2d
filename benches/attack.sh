#!/usr/bin/env bash
# The slow-connection attack mix against a release `macvault serve`, on 127.0.0.1 only,
# recording the server's memory (the test `serving::slow_and_oversized_heads_…` runs a
# short form in `.ci/run` and asserts behaviour, never memory):
#
#   benches/attack.sh                 # SLOW=500 BIG=300 BIG_KIB=360
#
#   1. `cargo build --release` (SKIP_BUILD=1 skips it);
#   2. starts a fresh server (port 0, temp data dir, default --header-timeout 5s);
#   3. opens SLOW connections that send half a request head and stop, and BIG
#      connections that each try to send BIG_KIB KiB of a head that never ends;
#   4. while they are open, asks /v1/health 20 times on fresh connections (all must be
#      200) and samples the server's VmRSS every 100 ms;
#   5. waits until the server has closed every attacking connection (bounded: 60 s);
#   6. prints RSS before, the peak during, and after; health latency; how many attack
#      connections the server closed, and how long that took.
#
# Exit status: 0 when every health check answered and every attacking connection was
# closed by the server; 1 otherwise; 2 when the benchmark itself could not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLOW=${SLOW:-500}
BIG=${BIG:-300}
BIG_KIB=${BIG_KIB:-360}

if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$ROOT" && timeout 1800 cargo build --release --locked) || exit 2
fi
BIN="$ROOT/target/release/macvault"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/macvault-attack.XXXXXX")
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/serve.out" 2>"$TMP/serve.err" &
SERVER=$!
for _ in $(seq 300); do
    grep -q "listening on" "$TMP/serve.out" 2>/dev/null && break
    sleep 0.1
done
ADDR=$(sed -n 's/.*listening on http:\/\///p' "$TMP/serve.out")
[ -n "$ADDR" ] || { echo "the server did not start"; cat "$TMP/serve.err"; exit 2; }

python3 - "$ADDR" "$SERVER" "$SLOW" "$BIG" "$BIG_KIB" <<'PY'
import socket, sys, threading, time

host, port = sys.argv[1].rsplit(":", 1)
pid, slow, big, big_kib = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

samples, stop = [], threading.Event()
def sample():
    while not stop.is_set():
        samples.append(rss_kib())
        time.sleep(0.1)

before = rss_kib()
threading.Thread(target=sample, daemon=True).start()
started = time.monotonic()
attack = []
for _ in range(slow):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: mac")
    attack.append(s)
filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
for _ in range(big):
    s = socket.create_connection((host, int(port)))
    s.settimeout(0.05)
    try:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\n")
        for _ in range(big_kib):
            s.sendall(filler)
    except OSError:
        pass  # the server stopped reading (431) or closed: what it should do
    attack.append(s)
opened = time.monotonic() - started

health = []
for _ in range(20):
    t = time.monotonic()
    h = socket.create_connection((host, int(port)), timeout=10)
    h.sendall(b"GET /v1/health HTTP/1.1\r\nHost: macvault\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := h.recv(4096):
        answer += chunk
    health.append((answer.startswith(b"HTTP/1.1 200"), time.monotonic() - t))
    h.close()

closed = 0
deadline = time.monotonic() + 60
for s in attack:
    s.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while s.recv(65536):
            pass
        closed += 1
    except ConnectionResetError:
        closed += 1
    except OSError:
        pass
all_closed_after = time.monotonic() - started
stop.set()
time.sleep(0.2)
after = rss_kib()

ok = all(a for a, _ in health) and closed == len(attack)
lat = sorted(t for _, t in health)
print(f"attack: {slow} half-sent heads + {big} heads of {big_kib} KiB, opened in {opened:.1f} s")
print(f"health: {sum(a for a, _ in health)}/20 answered 200, median {lat[len(lat)//2]*1000:.1f} ms, max {lat[-1]*1000:.1f} ms")
print(f"closed by the server: {closed}/{len(attack)}, all within {all_closed_after:.1f} s of the start")
print(f"VmRSS: before {before/1024:.1f} MiB, peak {max(samples + [before])/1024:.1f} MiB, after {after/1024:.1f} MiB")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
