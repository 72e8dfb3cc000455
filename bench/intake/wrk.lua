-- wrk script: every request a distinct GitLab push delivery (its own Idempotency-Key).
-- Usage: wrk -t2 -c32 -d10s -s wrk.lua http://127.0.0.1:PORT/hooks/gitlab -- TOKEN BODYFILE [RATE]
-- With RATE (requests/s, all threads together), each connection waits between its requests so
-- that the total is RATE (wrk's delay() hook): an open-loop-ish fixed-rate generator.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  table.insert(threads, thread)
end

function init(args)
  token = args[1]
  local f = assert(io.open(args[2], "rb"))
  body = f:read("*a")
  f:close()
  rate = tonumber(args[3] or "0")
  connections = tonumber(args[4] or "1")
  -- wrk.thread's connection count is not exposed; the bench passes it.
  math.randomseed(os.time() + tid)
  prefix = string.format("%d-%d-%d-", os.time(), tid, math.random(1, 1000000000))
end

function delay()
  if rate > 0 then
    -- each connection sends one request every connections/rate seconds
    return (connections / rate) * 1000
  end
  return 0
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitLab/17.5.0",
    ["X-Gitlab-Event"] = "Push Hook",
    ["X-Gitlab-Token"] = token,
    ["Idempotency-Key"] = prefix .. counter,
  }
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if status >= 300 then
    failures = (failures or 0) + 1
  end
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    "JSON {\"requests\": %d, \"duration_us\": %d, \"non2xx\": %d, \"connect_err\": %d, \"read_err\": %d, \"write_err\": %d, \"timeout_err\": %d, \"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d}\n",
    summary.requests, summary.duration, non2xx, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
