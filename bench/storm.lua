-- (c) A storm of all-distinct keys: every request is a new alert, so every one opens an
-- incident (itsmd's generic POST /api/v1/events).
local threads = 0
local counter = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
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
