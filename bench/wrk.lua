-- wrk script for bench/compare.py: POSTs JSON bodies read from a file (one per line), cycling
-- through them so that ids vary per request. A body may hold placeholders __UUID_<name>__,
-- each replaced by one fresh random UUID per request (the same UUID for every occurrence of
-- that name). A line "Bearer <token>\t<body>" sends that token as its Authorization header.
-- Responses that are not 200 or carry GraphQL "errors" are counted as bad.
-- Usage: wrk ... -s wrk.lua URL -- BODIES_FILE
local threads = {}
local counter = 0
local bodies, requests, auth = {}, {}, {}
local templated = false
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
bad = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      local token, body = line:match("^Bearer ([^\t]+)\t(.*)$")
      table.insert(bodies, body or line)
      auth[#bodies] = token
    end
  end
  templated = bodies[1]:find("__UUID_", 1, true) ~= nil
  math.randomseed(os.time() * 1000 + (tid or 1) * 7919 + math.floor(os.clock() * 1e6))
  if not templated then
    for i, body in ipairs(bodies) do
      requests[i] = wrk.format("POST", nil, headers_of(i), body)
    end
  end
  counter = ((tid or 1) - 1) * 997
end

function headers_of(i)
  if not auth[i] then
    return headers
  end
  local with = { ["Authorization"] = "Bearer " .. auth[i] }
  for name, value in pairs(headers) do
    with[name] = value
  end
  return with
end

local function hex(n)
  return string.format("%0" .. n .. "x", math.random(0, 16 ^ n - 1))
end

local function uuid4()
  local variant = ({ "8", "9", "a", "b" })[math.random(1, 4)]
  return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-" .. variant .. hex(3) .. "-" .. hex(6) .. hex(6)
end

function request()
  counter = counter + 1
  local i = counter % #bodies + 1
  if not templated then
    return requests[i]
  end
  local fresh = {}
  local body = bodies[i]:gsub("__UUID_(%w+)__", function(name)
    fresh[name] = fresh[name] or uuid4()
    return fresh[name]
  end)
  return wrk.format("POST", nil, headers_of(i), body)
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + (thread:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"bad": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    total_bad, e.connect, e.read, e.write, e.status, e.timeout))
end
