-- P4's client for wrk (Debian's package): POSTs pre-signed WhatsApp status notifications, each
-- once, in file order, from P4_BODIES ("<X-Hub-Signature-256>\t<body>" per line). When every
-- body is sent the connections idle (delay) until the benchmark stops wrk with SIGINT; done()
-- prints the latency figures as one JSON line.
local signatures, bodies = {}, {}
-- wrk calls request() once per thread before connecting and drops what it returns: start one
-- before the first body so that call costs no body
local next_body = -1
local path = os.getenv("P4_PATH") or "/webhooks/whatsapp/"
local cycle = os.getenv("P4_CYCLE") == "1" -- the reference: round and round, for a fixed time

function init(args)
  for line in io.lines(os.getenv("P4_BODIES")) do
    local tab = line:find("\t", 1, true)
    signatures[#signatures + 1] = line:sub(1, tab - 1)
    bodies[#bodies + 1] = line:sub(tab + 1)
  end
end

function delay()
  if next_body >= #bodies and not cycle then
    return 60000
  end
  return 0
end

function request()
  next_body = next_body + 1
  if cycle and next_body > #bodies then
    next_body = 1
  end
  local i = math.max(1, math.min(next_body, #bodies))
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = signatures[i],
  }, bodies[i])
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
