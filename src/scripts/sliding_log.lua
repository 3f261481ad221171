-- sliding_log.lua: mirrors src/algorithm/sliding_log.rs (SlidingLog::decide,
-- SlidingLogState::expire, record and time_when_freed).
--
-- KEYS[1]: state hash. The log is a queue of entries numbered head..tail-1,
--          oldest first: field a<i> = at_ms and u<i> = units of entry i.
--          Bookkeeping: h = head, t = tail, total (sum of units),
--          latest = latest_ms, exp.
-- ARGV: now_ms or "", cost (or an adjustment's units), the mode ("1" a
--       read-only peek, "2" / "3" a refund / penalty: el_adjustment),
--       limit, window_ms.
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial of a log of at most EL_MAX_LOG_ENTRIES_IN_REPLY entries the state
--        as stored (a denial changes none): total, latest, then at_ms and
--        units of each entry, oldest first.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local how = el_adjustment(ARGV[3])
local limit = el_num(ARGV[4], 'limit')
local window = el_num(ARGV[5], 'window_ms')

-- An adjustment's units may be anything.
if cost > limit and not how then
  return el_cost_error()
end
local now = el_clamp(raw_now)
-- state.get_or_insert_with(SlidingLogState::default)
local loaded = el_load(key, raw_now, readonly, 'h', 't', 'total', 'latest')
local state = loaded and { h = loaded[1], t = loaded[2], total = loaded[3], latest = loaded[4] } or nil
if state == nil then
  state = { h = 0, t = 0, total = 0, latest = 0 }
end
local head, tail, total = state.h, state.t, state.total

local function entry(i)
  local v = redis.call('HMGET', key, 'a' .. el_str(i), 'u' .. el_str(i))
  return tonumber(v[1]), tonumber(v[2])
end

-- Never evaluate before the latest time an admission was recorded at: a
-- clock going back must not bring back room already used.
local at = el_max(state.latest, now)

-- expire(at, window)
local expired = {}
while head < tail do
  local first_at, first_units = entry(head)
  if first_at + window > at then
    break
  end
  total = total - first_units
  expired[#expired + 1] = 'a' .. el_str(head)
  expired[#expired + 1] = 'u' .. el_str(head)
  head = head + 1
end

-- The newest entry, after a record below.
local last_at, last_units
if head < tail then
  last_at, last_units = entry(tail - 1)
end

-- adjust (SlidingLog::adjust): a refund takes units off the newest entries
-- (give_back), a penalty records up to the limit at `at`; then a read.
local latest = state.latest
local adjusted = {}
if how == 'refund' then
  local left = el_min(cost, total)
  total = total - left
  while left > 0 do
    local taken = el_min(left, last_units)
    last_units = last_units - taken
    left = left - taken
    if last_units == 0 then
      tail = tail - 1
      expired[#expired + 1] = 'a' .. el_str(tail)
      expired[#expired + 1] = 'u' .. el_str(tail)
      if head < tail then
        last_at, last_units = entry(tail - 1)
      end
    else
      adjusted = { 'u' .. el_str(tail - 1), el_str(last_units) }
    end
  end
  cost = 0
elseif how == 'penalty' then
  local charged = el_adjusted(how, cost, total, limit) - total
  if charged > 0 then
    latest = at
    if head < tail and last_at == at then
      last_units = last_units + charged
    else
      last_at, last_units = at, charged
      tail = tail + 1
    end
    adjusted = { 'a' .. el_str(tail - 1), el_str(last_at), 'u' .. el_str(tail - 1), el_str(last_units) }
    total = total + charged
  end
  cost = 0
end

local allowed = total + cost <= limit
local recorded = nil
if allowed and cost > 0 then
  -- record(at, cost)
  if head < tail and last_at == at then
    last_units = last_units + cost
    recorded = tail - 1
  else
    last_at, last_units = at, cost
    recorded = tail
    tail = tail + 1
  end
  total = total + cost
end

local retry_after_ms = 0
if not allowed then
  -- time_when_freed(total + cost - limit, window)
  local excess = total + cost - limit
  local freed = 0
  local found = nil
  for i = head, tail - 1 do
    local entry_at, entry_units = entry(i)
    freed = freed + entry_units
    if freed >= excess then
      found = entry_at + window
      break
    end
  end
  if found == nil then
    if head < tail then
      found = last_at + window
    else
      found = 0
    end
  end
  retry_after_ms = found - now
end

-- Only an admission or an adjustment changes the log: a denial or a read is
-- a pure read.
local writes = nil
if how then
  for i = 1, #expired, 1000 do
    redis.call('HDEL', key, unpack(expired, i, el_min(i + 999, #expired)))
  end
  writes = { 'h', el_str(head), 't', el_str(tail), 'total', el_str(total), 'latest', el_str(latest) }
  for i = 1, #adjusted do
    writes[#writes + 1] = adjusted[i]
  end
elseif not readonly and recorded ~= nil then
  -- In chunks: unpack is bounded by the Lua stack.
  for i = 1, #expired, 1000 do
    redis.call('HDEL', key, unpack(expired, i, el_min(i + 999, #expired)))
  end
  writes = { 'h', el_str(head), 't', el_str(tail), 'total', el_str(total), 'latest', el_str(at),
    'a' .. el_str(recorded), el_str(last_at), 'u' .. el_str(recorded), el_str(last_units) }
end

local reset_ms = now
local ttl = 0
if head < tail then
  local newest_end = last_at + window
  reset_ms = newest_end
  ttl = newest_end - now
end
el_finish(key, true, ttl, raw_now, caller_clock, readonly, writes)
-- The log as stored, unless longer than reply.rs MAX_LOG_ENTRIES_IN_REPLY.
local kept = nil
if not allowed and state.t - state.h <= EL_MAX_LOG_ENTRIES_IN_REPLY then
  kept = { state.total, state.latest }
  for i = state.h, state.t - 1 do
    local entry_at, entry_units = entry(i)
    kept[#kept + 1] = entry_at
    kept[#kept + 1] = entry_units
  end
end
-- More than the limit was admitted under a larger tier.
return el_reply(allowed, el_max(limit - total, 0), reset_ms, retry_after_ms, now, kept)
