-- Alerts over KEYS keys (0 = every alert a new key), one POST per request.
local keys = tonumber(os.getenv("KEYS") or "1000")
local n = 0
local prefix = os.getenv("PREFIX") or "w"
request = function()
  n = n + 1
  local k = keys > 0 and (n % keys) or n
  local body = string.format('{"source":"test","status":"firing","severity":"critical","summary":"wrk %s%d","labels":{"alertname":"Wrk","instance":"%s%d"}}', prefix, k, prefix, k)
  return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("ok_per_s=%.0f non2xx=%d errors=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
    (summary.requests - non2xx) / (summary.duration / 1e6), non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
