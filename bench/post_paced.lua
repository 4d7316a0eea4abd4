-- wrk script: bench/post.lua at a steady pace, each connection waiting PACE_MS after every
-- answer before its next request (wrk's delay hook), so latency is measured below saturation.
-- Usage: wrk -t1 -c<conc> -d<secs> --latency -s bench/post_paced.lua <url> -- <body-file> <pace-ms>
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "post.lua")

local post_init = init
local pace_ms = 0

function init(args)
  post_init(args)
  pace_ms = tonumber(args[2] or "0")
end

function delay()
  return pace_ms
end
