-- wrk script: POST one fixed JSON body to the URL, report exact percentiles.
-- Usage: wrk -t1 -c<conc> -d<secs> --latency -s bench/post.lua <url> -- <body-file>
-- wrk's -c (connections) is the concurrency: each connection has one request in flight.

function init(args)
  local path = args[1]
  if path == nil then
    error("post.lua needs the path of the request body: wrk ... -s post.lua URL -- BODY_FILE")
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- One machine-readable line after wrk's own report; latencies in microseconds.
function done(summary, latency, requests)
  io.write(string.format(
    "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"mean_us\": %.1f, \"max_us\": %d, \"err_connect\": %d, \"err_read\": %d, " ..
    "\"err_write\": %d, \"err_status\": %d, \"err_timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
