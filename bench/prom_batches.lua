-- (a) Prometheus-style: batches of 100 alerts over 1,000 distinct alert keys, re-sent.
-- The same ten bodies go round and round, as Prometheus re-sends its active alerts.
-- Works unchanged against itsmd and Alertmanager (both take POST /api/v2/alerts).
local bodies = {}
local i = 0
function init(args)
  local starts = args[1] or "2026-01-01T00:00:00Z"
  for b = 0, 9 do
    local parts = {}
    for a = 0, 99 do
      local n = b * 100 + a
      parts[#parts + 1] = string.format(
        '{"labels":{"alertname":"BenchBatch","instance":"host-%d","severity":"warning"},' ..
        '"annotations":{"summary":"bench alert %d"},"startsAt":"%s"}', n, n, starts)
    end
    bodies[b + 1] = "[" .. table.concat(parts, ",") .. "]"
  end
  i = math.random(0, 9)
end
function request()
  i = i % 10 + 1
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, bodies[i])
end
