-- One request shape for every wrk run, configured from the environment so the harness
-- never writes scripts at run time:
--   BENCH_METHOD  HTTP method (default GET)
--   BENCH_BODY    JSON request body (sent with Content-Type: application/json)
--   BENCH_TOKEN   access token, sent as "Authorization: Bearer <token>"
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
