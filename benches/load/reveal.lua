-- wrk script for benches/reveal.sh: POSTs a reveal with the bearer token read from the
-- file named by MV_TOKEN_FILE (minted fresh by reveal.sh), so this file holds no
-- credential. Prints "LOAD_RESULT k=v ..." at the end, as verify.lua does.

local path = os.getenv("MV_TOKEN_FILE")
if not path then
  error("MV_TOKEN_FILE must name a file holding the token")
end
local f = assert(io.open(path, "rb"))
local token = f:read("*l")
f:close()

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token

local non2xx = 0
function response(status, headers, body)
  if status ~= 200 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "LOAD_RESULT requests=%d rps=%.1f p50_us=%d p99_us=%d status_errors=%d timeouts=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50),
    latency:percentile(99), e.status, e.timeout))
end
