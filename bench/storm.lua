-- (c) A storm of all-distinct keys: every request is a new alert, so every one opens an
-- incident (itsmd's generic POST /api/v1/events).
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
  local body = string.format(
    '{"source":"bench","status":"firing","severity":"critical","summary":"storm %d-%d",' ..
    '"labels":{"alertname":"Storm","id":"%d-%d","run":"%s"}}', tid, counter, tid, counter, run_id)
  return wrk.format("POST", "/api/v1/events", {["Content-Type"] = "application/json"}, body)
end
function init(args)
  run_id = args[1] or "0"
end
