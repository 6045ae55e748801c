-- (c) A storm of all-distinct keys: every request is a new alert, so every one opens an
-- incident (itsmd's generic POST /api/v1/events, args[2] "itsmd" or absent), or is a new
-- alert for Alertmanager (a one-alert POST /api/v2/alerts with its own labels, args[2]
-- "am"): the same load generator, the twin of itsmd's storm.
local threads = 0
counter = 0 -- global: done() reads it from each thread
local all = {}
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
  all[threads] = thread
end
-- wrk counts only answered requests; those written when it stops reach itsmd too. Every
-- request() call is a distinct key sent, so the key count is the sum of the threads' counters.
function done(summary, latency, requests)
  local sent = 0
  for _, t in ipairs(all) do
    sent = sent + t:get("counter")
  end
  io.write(string.format("Keys sent: %d\n", sent))
end
function request()
  counter = counter + 1
  if mode == "am" then
    local body = string.format(
      '[{"labels":{"alertname":"Storm","id":"%d-%d","run":"%s","severity":"critical"},' ..
      '"annotations":{"summary":"storm %d-%d"},"startsAt":"2026-01-01T00:00:00Z"}]',
      tid, counter, run_id, tid, counter)
    return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, body)
  end
  local body = string.format(
    '{"source":"bench","status":"firing","severity":"critical","summary":"storm %d-%d",' ..
    '"labels":{"alertname":"Storm","id":"%d-%d","run":"%s"}}', tid, counter, tid, counter, run_id)
  return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "application/json"}, body)
end
function init(args)
  run_id = args[1] or "0"
  mode = args[2] or "itsmd"
end
