-- wrk script: POST an OpenAI-style chat completion and print machine-readable results.
--
-- Environment (all optional):
--   BENCH_KEY     Bearer key              (default sk-mr-bench-00000000000000000000)
--   BENCH_MODEL   public model name       (default bench-gpt)
--   BENCH_STREAM  "1" to send "stream":true (the server answers with SSE)
--   BENCH_LABEL   label put on the result line (default "run")
--
-- done() prints one line, e.g.
--   BENCH label=direct requests=123 duration_s=10.00 rps=12.3 p50_ms=1.234 p90_ms=... p99_ms=...
--         max_ms=... non2xx=0 err_connect=0 err_read=0 err_write=0 err_timeout=0

local key = os.getenv("BENCH_KEY") or "sk-mr-bench-00000000000000000000"
local model = os.getenv("BENCH_MODEL") or "bench-gpt"
local stream = os.getenv("BENCH_STREAM") == "1"
local label = os.getenv("BENCH_LABEL") or "run"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = stream and "text/event-stream" or "application/json"
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"hello"}]'
  .. (stream and ',"stream":true' or '') .. '}'

-- Latencies from wrk are in microseconds.
local function ms(us)
  return string.format("%.3f", us / 1000.0)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "BENCH label=%s stream=%s requests=%d duration_s=%.2f rps=%.1f "
      .. "p50_ms=%s p90_ms=%s p99_ms=%s max_ms=%s mean_ms=%s "
      .. "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    label, stream and "1" or "0", summary.requests, secs, summary.requests / secs,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max), ms(latency.mean),
    e.status, e.connect, e.read, e.write, e.timeout))
end
