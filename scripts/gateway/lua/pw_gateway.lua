-- pw_gateway: Kong's key-auth, acl, rate-limiting (local policy) and the
-- request-transformer's header edits for the local nginx gateway, plus the
-- throttling of failed authentication per client address (which Kong does
-- not have). This module owns what a client sees from the edge: which key is
-- accepted, Kong's 401/403/429 bodies and headers (as gRPC trailers-only
-- responses on gRPC routes), the per-consumer fixed windows kept in a
-- lua_shared_dict, and the headers forwarded to the upstreams (the consumer
-- name and the gateway secret). Keys are known only by their SHA-256
-- digests. Its settings come from kong/kong.yaml and the local credentials
-- through scripts/gateway/render.py, which calls init() from init_by_lua_block.

local ffi = require("ffi")

local M = {}

local conf -- set once per configuration load by init()

local GRPC_UNAUTHENTICATED = 16
local GRPC_PERMISSION_DENIED = 7
local GRPC_RESOURCE_EXHAUSTED = 8
local GRPC_UNIMPLEMENTED = 12

ffi.cdef([[
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
]])

-- libcrypto is linked into nginx; fall back to loading it by name.
local function load_crypto()
  if pcall(function() return ffi.C.SHA256 end) then
    return ffi.C
  end
  for _, name in ipairs({ "libcrypto.so.3", "crypto" }) do
    local ok, lib = pcall(ffi.load, name)
    if ok then
      return lib
    end
  end
  error("pw_gateway: libcrypto's SHA256 is not available")
end

local crypto = load_crypto()
local digest_buf = ffi.new("unsigned char[32]")

-- Lower-case hex SHA-256 of s: how the credentials name a key.
local function sha256_hex(s)
  crypto.SHA256(s, #s, digest_buf)
  return (ffi.string(digest_buf, 32):gsub(".", function(c)
    return string.format("%02x", c:byte())
  end))
end

-- Kong's per-period header names.
local PERIOD_TITLE = {
  second = "Second", minute = "Minute", hour = "Hour", day = "Day",
}

-- Headers only the gateway may set: a client's own values are dropped.
local GATEWAY_HEADERS = {
  "X-Consumer-ID", "X-Consumer-Custom-ID", "X-Consumer-Username",
  "X-Credential-Identifier", "X-Anonymous-Consumer", "X-Consumer-Groups",
  "X-Authenticated-Groups",
}

function M.init(c)
  -- c = { dict, authfail_dict, auth_throttle = {failures, window},
  --       consumers = {[sha256 hex of the key] = {username, groups = {[g] = true}}},
  --       services = { [name] = { kind = "rest"|"grpc",
  --         key_auth = {key_names, key_in_header, key_in_query, hide_credentials},
  --         acl = {allow = {[g] = true} | nil, deny = ... | nil, hide_groups_header},
  --         rate_limiting = {scope, limit_by, fault_tolerant, hide_client_headers,
  --                          error_code, error_message,
  --                          limits = {{period, limit, seconds}, ...}},
  --         headers = {remove = {name...}, add = {{name, value}...}} } } }
  conf = c
end

local function json_message(msg)
  -- Messages are fixed ASCII strings from this file and kong.yaml.
  return '{"message":"' .. msg:gsub('[\\"]', '\\%0') .. '"}'
end

local function set_headers(headers)
  if headers then
    for name, value in pairs(headers) do
      ngx.header[name] = value
    end
  end
end

-- Ends the request the way Kong does: JSON body on HTTP routes, a gRPC
-- trailers-only response (HTTP 200, grpc-status in the only header block)
-- on gRPC routes.
local function respond(kind, status, grpc_status, msg, headers)
  set_headers(headers)
  if kind == "grpc" then
    ngx.status = 200
    ngx.header["Content-Type"] = "application/grpc"
    ngx.header["grpc-status"] = tostring(grpc_status)
    ngx.header["grpc-message"] = msg
    ngx.header["Content-Length"] = 0
    ngx.var.pw_grpc_status = grpc_status
    ngx.send_headers()
    return ngx.exit(ngx.HTTP_OK)
  end
  local body = json_message(msg)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

-- Kong key-auth: per key name, the header first, then the query string.
-- Returns key, where ("header"/"query"), name; or nil, "duplicate".
local function find_key(ka)
  local headers = ka.key_in_header and ngx.req.get_headers() or nil
  local args = ka.key_in_query and ngx.req.get_uri_args() or nil
  for _, name in ipairs(ka.key_names) do
    for where, source in pairs({ header = headers, query = args }) do
      local v = source and source[name]
      if type(v) == "table" then
        return nil, "duplicate"
      end
    end
    if headers then
      local v = headers[name]
      if type(v) == "string" and v ~= "" then
        return v, "header", name
      end
    end
    if args then
      local v = args[name]
      if type(v) == "string" and v ~= "" then
        return v, "query", name
      end
    end
  end
  return nil
end

local function hide_credential(where, name)
  if where == "header" then
    ngx.req.clear_header(name)
  else
    local args = ngx.req.get_uri_args()
    args[name] = nil
    ngx.req.set_uri_args(args)
  end
end

-- Failed authentication per client address, in fixed windows: past the
-- limit every request of that address is refused with 429 until the window
-- ends, before any key is looked at.
local function authfail_key(now)
  local t = conf.auth_throttle
  local window = math.floor(now / t.window) * t.window
  return "af|" .. ngx.var.remote_addr .. "|" .. window, window + t.window
end

local function auth_throttled(kind)
  local dict = ngx.shared[conf.authfail_dict]
  local now = ngx.now()
  local key, ends = authfail_key(now)
  local failures = dict:get(key) or 0
  if failures < conf.auth_throttle.failures then
    return false
  end
  respond(kind, 429, GRPC_RESOURCE_EXHAUSTED, "Too many failed authentication attempts",
    { ["Retry-After"] = math.max(1, math.ceil(ends - now)) })
  return true
end

local function auth_failed(kind, msg)
  local dict = ngx.shared[conf.authfail_dict]
  local key = authfail_key(ngx.now())
  local _, err = dict:incr(key, 1, 0, conf.auth_throttle.window + 1)
  if err then
    ngx.log(ngx.WARN, "failed-authentication counter: ", err)
  end
  return respond(kind, 401, GRPC_UNAUTHENTICATED, msg, { ["WWW-Authenticate"] = 'Key realm="kong"' })
end

local function authenticate(kind, ka)
  if auth_throttled(kind) then
    return nil
  end
  local key, where, name = find_key(ka)
  if where == "duplicate" then
    return nil, auth_failed(kind, "Duplicate API key found")
  end
  if not key then
    return nil, auth_failed(kind, "No API key found in request")
  end
  local consumer = conf.consumers[sha256_hex(key)]
  if not consumer then
    return nil, auth_failed(kind, "Invalid authentication credentials")
  end
  if ka.hide_credentials then
    hide_credential(where, name)
  end
  return { username = consumer.username, groups = consumer.groups, key = key }
end

-- Kong's acl plugin: the consumer's groups against allow (or deny).
local function authorize(kind, acl, consumer)
  local member = false
  for group in pairs(consumer.groups) do
    if (acl.allow and acl.allow[group]) or (acl.deny and acl.deny[group]) then
      member = true
    end
  end
  local allowed = (acl.allow and member) or (acl.deny and not member)
  if not allowed then
    respond(kind, 403, GRPC_PERMISSION_DENIED, "You cannot consume this service")
    return false
  end
  if not acl.hide_groups_header then
    local names = {}
    for group in pairs(consumer.groups) do
      names[#names + 1] = group
    end
    table.sort(names)
    ngx.req.set_header("X-Consumer-Groups", table.concat(names, ", "))
  end
  return true
end

-- The request-transformer: remove, then add (Kong adds only what is absent;
-- after the removal that is every header named here).
local function transform_headers(h)
  for _, name in ipairs(h.remove) do
    ngx.req.clear_header(name)
  end
  for _, pair in ipairs(h.add) do
    if not ngx.req.get_headers()[pair[1]] then
      ngx.req.set_header(pair[1], pair[2])
    end
  end
end

-- Kong falls back to the client address when there is no consumer.
local function identifier(rl, consumer)
  if consumer and rl.limit_by == "credential" then
    return "credential:" .. ngx.md5(consumer.key)
  elseif consumer and rl.limit_by == "consumer" then
    return "consumer:" .. consumer.username
  end
  return "ip:" .. ngx.var.remote_addr
end

-- Fixed windows aligned to the period like Kong's local policy. Every period
-- is counted atomically; a rejected request gives its counts back, so it
-- does not use up the quota of the longer periods.
local function rate_limit(kind, rl, consumer)
  local dict = ngx.shared[conf.dict]
  local now = ngx.now()
  local id = identifier(rl, consumer)
  local counted, headers, exceeded, retry_after = {}, {}, false, 0
  local best -- the period closest to its limit, for Kong's RateLimit-* headers
  for _, l in ipairs(rl.limits) do
    local period, limit, seconds = l[1], l[2], l[3]
    local window = math.floor(now / seconds) * seconds
    local key = "rl|" .. rl.scope .. "|" .. id .. "|" .. period .. "|" .. window
    local count, err = dict:incr(key, 1, 0, seconds + 1)
    if not count then
      if not rl.fault_tolerant then
        ngx.log(ngx.ERR, "rate-limiting counter failed: ", err)
        return respond(kind, 500, 13, "An unexpected error occurred")
      end
      ngx.log(ngx.WARN, "rate-limiting counter failed, request passed: ", err)
      return
    end
    counted[#counted + 1] = key
    local title = PERIOD_TITLE[period]
    headers["X-RateLimit-Limit-" .. title] = limit
    headers["X-RateLimit-Remaining-" .. title] = math.max(limit - count, 0)
    local remaining = math.max(limit - count, 0)
    local reset = math.max(1, math.ceil(window + seconds - now))
    if not best or remaining < best.remaining or (remaining == best.remaining and limit > best.limit) then
      best = { limit = limit, remaining = remaining, reset = reset }
    end
    if count > limit then
      exceeded = true
      retry_after = math.max(retry_after, reset)
    end
  end
  if best then
    headers["RateLimit-Limit"] = best.limit
    headers["RateLimit-Remaining"] = best.remaining
    headers["RateLimit-Reset"] = best.reset
  end
  if rl.hide_client_headers then
    headers = {}
  end
  if exceeded then
    for _, key in ipairs(counted) do
      dict:incr(key, -1)
    end
    headers["Retry-After"] = retry_after
    return respond(kind, rl.error_code, GRPC_RESOURCE_EXHAUSTED, rl.error_message, headers)
  end
  ngx.ctx.pw_ratelimit_headers = headers
end

local function method_allowed(methods)
  if methods == "" then
    return true
  end
  local m = ngx.req.get_method()
  for allowed in methods:gmatch("[^,]+") do
    if allowed == m then
      return true
    end
  end
  return false
end

-- access_by_lua: the service of the location and its route's methods
-- ("" = any), in Kong's plugin order: key-auth, acl, rate-limiting,
-- request-transformer.
function M.access(name, methods)
  local svc = conf.services[name]
  local kind = svc.kind
  if not method_allowed(methods) then
    return M.no_route(kind)
  end
  for _, h in ipairs(GATEWAY_HEADERS) do
    ngx.req.clear_header(h)
  end
  local consumer
  if svc.key_auth then
    consumer = authenticate(kind, svc.key_auth)
    if not consumer then
      return
    end
    ngx.var.pw_consumer = consumer.username
  end
  if svc.acl and consumer and not authorize(kind, svc.acl, consumer) then
    return
  end
  if svc.rate_limiting then
    rate_limit(kind, svc.rate_limiting, consumer)
  end
  if consumer then
    ngx.req.set_header("X-Consumer-Username", consumer.username)
  end
  if svc.headers then
    transform_headers(svc.headers)
  end
end

-- header_filter_by_lua: the rate-limit headers on proxied responses too.
function M.header_filter()
  set_headers(ngx.ctx.pw_ratelimit_headers)
end

-- content_by_lua for paths no route matches.
function M.no_route(kind)
  if kind == "grpc" then
    return respond(kind, 404, GRPC_UNIMPLEMENTED, "no Route matched with those values")
  end
  return respond(kind, 404, nil, "no Route matched with those values")
end

return M
