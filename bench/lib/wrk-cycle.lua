-- The wrk script of loadgen-wrk.ts. The connections take the URLs of WRK_PATHS (one path a
-- line) in turn, one cycle for all of them, and `done` prints the counts as one JSON line.
local requests = {}
local turn = 0

function init (args)
  for line in io.lines(os.getenv("WRK_PATHS")) do
    requests[#requests + 1] = wrk.format("GET", line)
  end
end

function request ()
  turn = turn % #requests + 1
  return requests[turn]
end

function done (summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"bytes":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
