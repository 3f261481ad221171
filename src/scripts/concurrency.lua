-- concurrency.lua: mirrors src/algorithm/concurrency.rs (Concurrency::apply).
--
-- KEYS[1]: state hash {<lease id> = expires_at_ms for each lease,
--          latest = latest_ms, exp}. Lease ids are decimal u64s, kept as
--          the caller's strings (never converted to numbers), so they never
--          collide with `latest` or `exp`.
-- ARGV: now_ms or "", op ("acquire" | "release" | "extend" | "peek"),
--       lease id, ttl_ms (0: the configured lease), max, lease_ms.
-- Reply: {allowed, decision_allowed, remaining, reset_ms, retry_after_ms,
--         now_ms, expires_at_ms or -1}.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local op = ARGV[2]
local id = ARGV[3]
local ttl_arg = el_num(ARGV[4], 'ttl_ms')
local max = el_num(ARGV[5], 'max')
local configured_lease = el_num(ARGV[6], 'lease_ms')
if op ~= 'acquire' and op ~= 'release' and op ~= 'extend' and op ~= 'peek' then
  return redis.error_reply('EDGELIMIT unknown lease operation')
end

local now = el_clamp(raw_now)
local function lease_ms(ttl)
  if ttl == 0 then
    return configured_lease
  end
  return el_min(ttl, EL_MAX_SPAN_MS)
end

-- state.get_or_insert_with(ConcurrencyState::default)
local latest = 0
local fields = {}
local exp = tonumber(redis.call('HGET', key, 'exp'))
if exp ~= nil and exp <= raw_now then
  redis.call('DEL', key)
elseif exp ~= nil then
  fields = redis.call('HGETALL', key)
end
local leases = {}
local count = 0
local expired = {}
for i = 1, #fields, 2 do
  local field = fields[i]
  if field == 'latest' then
    latest = tonumber(fields[i + 1])
  elseif field ~= 'exp' then
    leases[field] = tonumber(fields[i + 1])
  end
end
local at = el_max(latest, now)
latest = at
-- retain(|l| l.expires_at_ms > at)
for lease_id, expires in pairs(leases) do
  if expires > at then
    count = count + 1
  else
    expired[#expired + 1] = lease_id
    leases[lease_id] = nil
  end
end

local allowed = false
local expires_at_ms = -1
local changed = nil -- a lease id set to leases[changed]
local removed = nil -- a lease id released
if op == 'acquire' then
  local until_ms = at + lease_ms(ttl_arg)
  if leases[id] ~= nil then
    leases[id] = el_max(leases[id], until_ms)
    allowed, expires_at_ms, changed = true, leases[id], id
  elseif count < max then
    leases[id] = until_ms
    count = count + 1
    allowed, expires_at_ms, changed = true, until_ms, id
  end
elseif op == 'release' then
  if leases[id] ~= nil then
    leases[id] = nil
    count = count - 1
    allowed, removed = true, id
  end
elseif op == 'extend' then
  if leases[id] ~= nil then
    local until_ms = at + lease_ms(ttl_arg)
    leases[id] = until_ms
    allowed, expires_at_ms, changed = true, until_ms, id
  end
else
  allowed = true
end

local last_expiry, first_expiry = nil, nil
for _, expires in pairs(leases) do
  if last_expiry == nil or expires > last_expiry then
    last_expiry = expires
  end
  if first_expiry == nil or expires < first_expiry then
    first_expiry = expires
  end
end
local denied = op == 'acquire' and not allowed

if removed ~= nil then
  expired[#expired + 1] = removed
end
for i = 1, #expired, 1000 do
  redis.call('HDEL', key, unpack(expired, i, el_min(i + 999, #expired)))
end
local writes = { 'latest', el_str(latest) }
if changed ~= nil then
  writes[#writes + 1] = changed
  writes[#writes + 1] = el_str(leases[changed])
end

local reset_ms = now
local ttl = 0
if last_expiry ~= nil then
  reset_ms = last_expiry
  ttl = last_expiry - now
end
local retry_after_ms = 0
if denied and first_expiry ~= nil then
  retry_after_ms = first_expiry - now
end
el_finish(key, true, ttl, raw_now, caller_clock, false, writes)
return { el_bool(allowed), el_bool(not denied), max - count, reset_ms, retry_after_ms, now,
  expires_at_ms }
