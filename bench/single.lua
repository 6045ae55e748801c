-- (b) Single events, one per request, over 1,000 keys: PagerDuty Events API v2 for itsmd
-- (args[1] == "pagerduty"), a one-alert POST /api/v2/alerts for Alertmanager (args[1] == "am").
local mode = "pagerduty"
local n = 0
local starts = "2026-01-01T00:00:00Z"
function init(args)
  mode = args[1] or "pagerduty"
  n = math.random(0, 999)
end
function request()
  n = (n + 1) % 1000
  if mode == "am" then
    local body = string.format(
      '[{"labels":{"alertname":"BenchSingle","instance":"host-%d","severity":"critical"},' ..
      '"annotations":{"summary":"bench single %d"},"startsAt":"%s"}]', n, n, starts)
    return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, body)
  end
  local body = string.format(
    '{"routing_key":"bench","event_action":"trigger","dedup_key":"bench-%d",' ..
    '"payload":{"summary":"bench single %d","source":"host-%d","severity":"critical"}}', n, n, n)
  return wrk.format("POST", "/v2/enqueue", {["Content-Type"] = "application/json"}, body)
end
