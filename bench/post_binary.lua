-- wrk script: POST one fixed request in the V2 binary tensor extension (a JSON header, then
-- the raw tensor bytes), report exact percentiles as bench/post.lua does.
-- Usage: wrk -t1 -c<conc> -d<secs> --latency -s bench/post_binary.lua <url> -- <body-file> <header-length>

function init(args)
  local path, header_length = args[1], args[2]
  if path == nil or header_length == nil then
    error("post_binary.lua needs the body file and its JSON header's length: wrk ... -- BODY LENGTH")
  end
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = header_length
end

function done(summary, latency, requests)
  io.write(string.format(
    "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"mean_us\": %.1f, \"max_us\": %d, \"err_connect\": %d, \"err_read\": %d, " ..
    "\"err_write\": %d, \"err_status\": %d, \"err_timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
