-- wrk: one reading per POST /v1/telemetry over keep-alive connections.
-- Optional pacing: env PW_BENCH_DELAY_MS (per connection, between requests).
local delay_ms = tonumber(os.getenv("PW_BENCH_DELAY_MS") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Consumer-Username"] = "bench"
-- the producer takes ingest only with the gateway secret (env PW_BENCH_GATEWAY_TOKEN)
wrk.headers["X-Gateway-Token"] = os.getenv("PW_BENCH_GATEWAY_TOKEN") or ""
-- through the bench gateway: its key (env PW_BENCH_APIKEY); the gateway
-- replaces X-Gateway-Token and X-Consumer-Username with its own
local apikey = os.getenv("PW_BENCH_APIKEY")
if apikey and apikey ~= "" then
  wrk.headers["apikey"] = apikey
end
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"device_id":"bench-%d","zone":"zone-%d","type":"temperature","value":%d.5,"unit":"C","firmware":"1.0.0"}',
    n % 500, n % 8, n % 90)
  return wrk.format(nil, "/v1/telemetry", nil, body)
end
if delay_ms > 0 then
  delay = function() return delay_ms end
end
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("PWBENCH requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
