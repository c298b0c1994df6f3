-- One request shape for every wrk run, configured from the environment so the harness
-- never writes scripts at run time:
--   BENCH_METHOD  HTTP method (default GET)
--   BENCH_BODY    JSON request body (sent with Content-Type: application/json)
--   BENCH_TOKEN   access token, sent as "Authorization: Bearer <token>"
--   BENCH_MANY_CLIENTS  non-empty: each request names another client in X-Forwarded-For
--                 (10.0.0.0/8, in turn), as the proxy in front of the service would
-- wrk loads this file once per thread; the globals below become every request's shape.

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local token = os.getenv("BENCH_TOKEN")
if token ~= nil and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

if (os.getenv("BENCH_MANY_CLIENTS") or "") ~= "" then
  -- A per-request function costs wrk a Lua call a request: only the runs that need it.
  local counter = 0
  local base = {}
  for name, value in pairs(wrk.headers) do
    base[name] = value
  end
  request = function()
    counter = counter + 1
    local n = counter % 16777216
    base["X-Forwarded-For"] = string.format(
      "10.%d.%d.%d", math.floor(n / 65536), math.floor(n / 256) % 256, n % 256
    )
    return wrk.format(nil, nil, base)
  end
end
