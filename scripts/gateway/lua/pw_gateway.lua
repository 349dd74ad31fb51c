-- pw_gateway: Kong's key-auth and rate-limiting (local policy) for the local
-- nginx gateway. This module owns what a client sees from the edge: which
-- key is accepted, Kong's 401/429 bodies and headers (as gRPC trailers-only
-- responses on gRPC routes), the per-consumer fixed windows kept in a
-- lua_shared_dict, and the headers forwarded to the producers. Its settings
-- come from kong/kong.yaml through scripts/gateway/render.py, which calls
-- init() from init_by_lua_block.

local M = {}

local conf -- set once per configuration load by init()

local GRPC_UNAUTHENTICATED = 16
local GRPC_RESOURCE_EXHAUSTED = 8
local GRPC_UNIMPLEMENTED = 12

-- Kong's per-period header names.
local PERIOD_TITLE = {
  second = "Second", minute = "Minute", hour = "Hour", day = "Day",
}

-- Headers only the gateway may set: a client's own values are dropped.
local GATEWAY_HEADERS = {
  "X-Consumer-ID", "X-Consumer-Custom-ID", "X-Consumer-Username",
  "X-Credential-Identifier", "X-Anonymous-Consumer",
}

function M.init(c)
  -- c = { dict, consumers = {key = username},
  --       services = { rest|grpc = { name,
  --         key_auth = {key_names, key_in_header, key_in_query, hide_credentials},
  --         rate_limiting = {scope, limit_by, fault_tolerant, hide_client_headers,
  --                          error_code, error_message,
  --                          limits = {{period, limit, seconds}, ...}} } } }
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

local function authenticate(kind, ka)
  local www = { ["WWW-Authenticate"] = 'Key realm="kong"' }
  local key, where, name = find_key(ka)
  if where == "duplicate" then
    return nil, respond(kind, 401, GRPC_UNAUTHENTICATED, "Duplicate API key found", www)
  end
  if not key then
    return nil, respond(kind, 401, GRPC_UNAUTHENTICATED, "No API key found in request", www)
  end
  local username = conf.consumers[key]
  if not username then
    return nil, respond(kind, 401, GRPC_UNAUTHENTICATED, "Invalid authentication credentials", www)
  end
  if ka.hide_credentials then
    hide_credential(where, name)
  end
  return { username = username, key = key }
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

-- access_by_lua: kind is "rest" or "grpc" (the service of the location).
function M.access(kind)
  local svc = conf.services[kind]
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
  if svc.rate_limiting then
    rate_limit(kind, svc.rate_limiting, consumer)
  end
  if consumer then
    ngx.req.set_header("X-Consumer-Username", consumer.username)
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
