-- concurrency.lua: mirrors src/algorithm/concurrency.rs (Concurrency::apply).
--
-- KEYS[1]: state hash {<lease id> = expires_at_ms for each lease,
--          t<owner> = "number:waiters:expires_at_ms" for each queue ticket,
--          n = the last number handed to a waiter, latest = latest_ms, exp}.
--          Lease ids and owners are decimal u64s, kept as the caller's
--          strings (never converted to numbers), so they never collide with
--          the other fields.
-- ARGV: now_ms or "", op ("acquire" | "acquire_unfair" | "wait" | "leave" |
--       "release" | "extend" | "peek"), lease id, ttl_ms (0: the configured
--       lease), max, lease_ms; for "wait" and "leave" then owner, number,
--       oldest, next, waiters.
-- Reply: {allowed, decision_allowed, remaining, reset_ms, retry_after_ms,
--         now_ms, expires_at_ms or -1, number}.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local op = ARGV[2]
local id = ARGV[3]
local ttl_arg = el_num(ARGV[4], 'ttl_ms')
local max = el_num(ARGV[5], 'max')
local configured_lease = el_num(ARGV[6], 'lease_ms')
local is_acquire = op == 'acquire' or op == 'acquire_unfair' or op == 'wait'
if not is_acquire and op ~= 'leave' and op ~= 'release' and op ~= 'extend' and op ~= 'peek' then
  return redis.error_reply('EDGELIMIT unknown lease operation')
end
local owner, given, oldest, next_number, waiters = '0', 0, 0, 0, 0
if op == 'wait' or op == 'leave' then
  owner = ARGV[7]
  if type(owner) ~= 'string' or not string.match(owner, '^%d+$') then
    error('EDGELIMIT bad argument: owner')
  end
  given = el_num(ARGV[8], 'number')
  oldest = el_num(ARGV[9], 'oldest')
  next_number = el_num(ARGV[10], 'next')
  waiters = el_min(el_max(el_num(ARGV[11], 'waiters'), 1), EL_MAX_TICKET_WAITERS)
end

-- The lower of two numbers, 0 meaning none.
local function lowest(a, b)
  if a == 0 then
    return b
  elseif b == 0 then
    return a
  end
  return el_min(a, b)
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
local tickets = {} -- owner -> {number, waiters, expires_at_ms}
local last_number = 0
for i = 1, #fields, 2 do
  local field = fields[i]
  if field == 'latest' then
    latest = tonumber(fields[i + 1])
  elseif field == 'n' then
    last_number = tonumber(fields[i + 1])
  elseif string.byte(field, 1) == 116 then -- 't': a ticket
    local n, w, e = string.match(fields[i + 1], '^(%d+):(%d+):(%d+)$')
    tickets[string.sub(field, 2)] = { tonumber(n), tonumber(w), tonumber(e) }
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
for ticket_owner, ticket in pairs(tickets) do
  if ticket[3] <= at then
    expired[#expired + 1] = 't' .. ticket_owner
    tickets[ticket_owner] = nil
  end
end

-- The waiters of the tickets ahead of (owner, number), and the earliest of
-- their expiries.
local function ahead(number)
  local sum, first = 0, nil
  for ticket_owner, ticket in pairs(tickets) do
    if number == 0 or (ticket_owner ~= owner and ticket[1] < number) then
      sum = sum + ticket[2]
      if first == nil or ticket[3] < first then
        first = ticket[3]
      end
    end
  end
  return sum, first
end

local allowed = false
local expires_at_ms = -1
local changed = nil -- a lease id set to leases[changed]
local removed = nil -- a field deleted: a released lease, a ticket gone
local ticket_changed = false -- tickets[owner] and n to write
local number = 0
local blocking_ticket = nil
if is_acquire then
  local claim = 0
  if op == 'acquire' then
    claim, blocking_ticket = ahead(0)
  elseif op == 'wait' then
    local position = 0
    if given ~= 0 then
      position = lowest(given, oldest)
      if tickets[owner] ~= nil then
        position = lowest(position, tickets[owner][1])
      end
    end
    claim, blocking_ticket = ahead(position)
  end
  local until_ms = at + lease_ms(ttl_arg)
  if leases[id] ~= nil then
    leases[id] = el_max(leases[id], until_ms)
    allowed, expires_at_ms, changed = true, leases[id], id
  elseif count + claim < max then
    leases[id] = until_ms
    count = count + 1
    allowed, expires_at_ms, changed = true, until_ms, id
  end
  if op == 'wait' then
    local mine = tickets[owner]
    if allowed and next_number == 0 then
      if mine ~= nil then
        tickets[owner] = nil
        removed = 't' .. owner
      end
    elseif allowed then
      tickets[owner] = { next_number, el_max(waiters - 1, 1), at + EL_TICKET_MS }
      ticket_changed = true
    else
      number = given
      if number == 0 then
        last_number = last_number + 1
        number = last_number
      end
      local kept = 0
      if mine ~= nil then
        kept = mine[1]
      end
      tickets[owner] = { lowest(lowest(number, oldest), kept), waiters, at + EL_TICKET_MS }
      ticket_changed = true
    end
  end
elseif op == 'leave' then
  if tickets[owner] ~= nil then
    tickets[owner] = nil
    allowed, removed = true, 't' .. owner
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
local last_ticket = nil
for _, ticket in pairs(tickets) do
  if last_ticket == nil or ticket[3] > last_ticket then
    last_ticket = ticket[3]
  end
end
local denied = is_acquire and not allowed

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
if ticket_changed then
  local mine = tickets[owner]
  writes[#writes + 1] = 't' .. owner
  writes[#writes + 1] = el_str(mine[1]) .. ':' .. el_str(mine[2]) .. ':' .. el_str(mine[3])
  writes[#writes + 1] = 'n'
  writes[#writes + 1] = el_str(last_number)
end

local reset_ms = now
local keep_until = last_ticket
if last_expiry ~= nil then
  reset_ms = last_expiry
  if keep_until == nil or last_expiry > keep_until then
    keep_until = last_expiry
  end
end
local ttl = 0
if keep_until ~= nil then
  ttl = keep_until - now
end
local retry_at = first_expiry
if blocking_ticket ~= nil and (retry_at == nil or blocking_ticket < retry_at) then
  retry_at = blocking_ticket
end
local retry_after_ms = 0
if denied and retry_at ~= nil then
  retry_after_ms = retry_at - now
end
el_finish(key, true, ttl, raw_now, caller_clock, false, writes)
return { el_bool(allowed), el_bool(not denied), max - count, reset_ms, retry_after_ms, now,
  expires_at_ms, number }
