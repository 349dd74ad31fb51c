-- wrk: 100 readings per POST /v1/telemetry (one JSON array) over keep-alive.
wrk.method = "POST"
wrk.path = "/v1/telemetry"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Consumer-Username"] = "bench"
-- the producer takes ingest only with the gateway secret (env PW_BENCH_GATEWAY_TOKEN)
wrk.headers["X-Gateway-Token"] = os.getenv("PW_BENCH_GATEWAY_TOKEN") or ""
local items = {}
for i = 0, 99 do
  items[#items + 1] = string.format(
    '{"device_id":"bench-%d","zone":"zone-%d","type":"temperature","value":%d.5,"unit":"C","firmware":"1.0.0"}',
    i * 5, i % 8, i % 90)
end
wrk.body = "[" .. table.concat(items, ",") .. "]"
done = function(summary, latency, requests)
  io.write(string.format("PWBENCH requests=%d duration_us=%d non2xx=%d sockerr=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
