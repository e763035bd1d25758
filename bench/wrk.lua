-- wrk script for every HTTP run of bench/run.py.
--   BENCH_METHOD  GET (default) or POST;  BENCH_BODY  bytes of request body (default 0)
--   BENCH_DEPTH   requests sent back to back per batch (pipelining; default 1)
-- done() prints one line "RESULT <json>" with counts and latency percentiles in microseconds.

local depth = tonumber(os.getenv("BENCH_DEPTH") or "1")
local size = tonumber(os.getenv("BENCH_BODY") or "0")
wrk.method = os.getenv("BENCH_METHOD") or "GET"
if size > 0 then
   wrk.body = string.rep("b", size)
   wrk.headers["Content-Type"] = "application/octet-stream"
end

if depth > 1 then
   local batch
   request = function()
      if not batch then
         local reqs = {}
         for i = 1, depth do reqs[i] = wrk.format() end
         batch = table.concat(reqs)
      end
      return batch
   end
end

done = function(s, lat, _)
   local e = s.errors
   io.write(string.format(
      'RESULT {"requests":%d,"us":%d,"bytes":%d,"errors":%d,"p50":%d,"p99":%d}\n',
      s.requests, s.duration, s.bytes, e.connect + e.read + e.write + e.status + e.timeout,
      lat:percentile(50), lat:percentile(99)))
end
