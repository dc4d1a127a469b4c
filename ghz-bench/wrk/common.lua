-- Prepended by bench.py to every ghz-bench wrk script: thread ids, 256-byte values, base64, and a one-line JSON
-- summary (prefix WRKJSON) that bench.py parses. Environment: WRK_RUN (unique per run), WRK_KEYS (preloaded keys).
local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
end

RUN = os.getenv("WRK_RUN") or "r"
-- A stack with auth on (KVMESH_BENCH_AUTH=on): kvmesh requests carry its admin token. H(extra) = headers to send.
TOKEN = os.getenv("KVMESH_BENCH_TOKEN") or ""
function H(extra)
  local h = extra or {}
  if TOKEN ~= "" then h["Authorization"] = "Bearer " .. TOKEN end
  return h
end
NKEYS = tonumber(os.getenv("WRK_KEYS") or "1000")
VALUE = string.rep("v", 256)
counter = 0

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function b64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(v / 262144) % 64
    local c2 = math.floor(v / 4096) % 64
    local c3 = math.floor(v / 64) % 64
    local c4 = v % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1) ..
      (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
    '"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
