-- wrk script for bench/serving.py and bench/recommend.py: send prebuilt requests, print
-- one JSON summary line.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/requests.lua URL -- BODIES [KEY [THREADS]]
--
-- BODIES is a file of request lines "PATH<TAB>JSON_BODY" (so one run can hit several
-- routes), sent as POST; a line with nothing after the tab is sent as GET. KEY, when given, is sent as "Authorization: Bearer KEY". Both can also come from
-- the environment (WRK_BODIES, WRK_KEY); THREADS (or WRK_THREADS) is wrk's -t. Every request
-- is built once in init(); thread i of n starts i/n of the way into the file and cycles.
--
-- done() prints a single line of JSON (the last line of stdout): requests, duration_us,
-- errors (connect + read + write + timeout + status >= 400), status_errors, latency
-- percentiles in microseconds, counts per HTTP status and the first error body seen.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local requests_ = {}
local position = 1
statuses = {}
first_error = ""

function init(args)
  local path = args[1] or os.getenv("WRK_BODIES")
  local key = args[2] or os.getenv("WRK_KEY")
  if path == nil or path == "" then
    error("requests.lua: give the bodies file: wrk ... -s requests.lua URL -- BODIES [KEY]")
  end
  local headers = { ["Content-Type"] = "application/json" }
  if key ~= nil and key ~= "" then
    headers["Authorization"] = "Bearer " .. key
  end
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    local tab = line:find("\t", 1, true)
    if tab ~= nil then
      local route = line:sub(1, tab - 1)
      local body = line:sub(tab + 1)
      if body == "" then
        table.insert(requests_, wrk.format("GET", route, headers))
      else
        table.insert(requests_, wrk.format("POST", route, headers, body))
      end
    end
  end
  file:close()
  if #requests_ == 0 then
    error("requests.lua: no PATH<TAB>BODY lines in " .. path)
  end
  -- spread the threads over the file: thread i starts i/n of the way in
  local index = thread_index or 0
  local count = tonumber(args[3] or os.getenv("WRK_THREADS") or "") or 1
  position = (math.floor(#requests_ * index / math.max(count, 1)) % #requests_) + 1
end

function request()
  local req = requests_[position]
  position = position + 1
  if position > #requests_ then
    position = 1
  end
  return req
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 400 and first_error == "" then
    first_error = key .. " " .. string.sub(body or "", 1, 300)
  end
end

local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    if c == '"' then
      return '\\"'
    elseif c == "\\" then
      return "\\\\"
    end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local e = summary.errors
  local merged = {}
  local first = ""
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for code, n in pairs(counts) do
      merged[code] = (merged[code] or 0) + n
    end
    local err = thread:get("first_error") or ""
    if first == "" then
      first = err
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    table.insert(parts, string.format('"%s": %d', code, n))
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"statuses": {%s}, "first_error": %s}\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout + e.status, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ", "), json_string(first)
  ))
end
