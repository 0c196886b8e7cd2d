-- wrk script for benches/load.sh: POSTs one fixed /v1/verify body on every request.
-- The body is read from the file named by the MV_BODY environment variable (the token
-- is minted fresh by load.sh), so this file holds no credential.
-- At the end it prints one machine-readable line, "LOAD_RESULT k=v ...", with exact
-- figures (latencies in microseconds) for load.sh to parse.

local path = os.getenv("MV_BODY")
if not path then
  error("MV_BODY must name a file holding the request body")
end
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "LOAD_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d "
      .. "p999_us=%d max_us=%d mean_us=%.1f status_errors=%d connect_errors=%d "
      .. "read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
