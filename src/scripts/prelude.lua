-- edgelimit script prelude, prepended to every algorithm script.
--
-- Redis runs Lua 5.1: every number is an IEEE double, exact for integers up
-- to 2^53. Configurations are validated in Rust (src/algorithm/limits.rs) so
-- that every product the algorithms compute stays below 2^53, and each script
-- does the same integer arithmetic as its Rust twin.
--
-- Time: ARGV[1] is the caller's time in milliseconds, or "" to use the
-- server's TIME. Expiry: besides its algorithm fields, every state hash has a
-- field `exp`, the time (on the same clock as ARGV[1]) from which the state no
-- longer counts, exactly as the in-memory store keeps `expires_at_ms`: a
-- state is read only while `exp > now`. The key itself gets PEXPIRE ttl_ms on
-- the server's clock; with the caller's clock, EL_GRACE_MS more, so that a
-- caller clock running behind the server's cannot lose a state early (the
-- decision still follows `exp`). A TTL of 0 deletes the key.

-- build.rs defines EL_MAX_TIME_MS, EL_MAX_EXACT, EL_MAX_SPAN_MS and the
-- rest before this file, from src/algorithm/twin.rs.
local EL_GRACE_MS = 10000

-- Functions called on every decision, held in locals: a local is a register
-- read, `math.floor` two table lookups (a batch runs hundreds of decisions).
local tonumber, el_floor, el_min, el_max = tonumber, math.floor, math.min, math.max

-- A decimal argument as a number; raises a script error when malformed.
-- The calls of a batch repeat their configuration: each distinct string is
-- parsed once per script call (a lookup costs a third of tonumber).
local el_nums = {}
local function el_num(arg, what)
  local n = el_nums[arg]
  if n ~= nil then
    return n
  end
  n = tonumber(arg)
  -- n % 1 is NaN for an infinity, and never 0 for a fraction.
  if n == nil or n < 0 or n % 1 ~= 0 then
    error('EDGELIMIT bad argument: ' .. what)
  end
  el_nums[arg] = n
  return n
end

-- ARGV[3] of a rate script: '0' a call, '1' a read-only peek, '2' a refund,
-- '3' a penalty (adjust.rs Adjustment; ARGV[2] then holds the units).
local function el_adjustment(mode)
  if mode == '2' then
    return 'refund'
  elseif mode == '3' then
    return 'penalty'
  end
  return nil
end

-- adjust.rs Adjustment::apply: `used` after the adjustment, within
-- [0, limit] (a usage already above the limit is never raised).
local function el_adjusted(how, units, used, limit)
  if how == 'refund' then
    return used - el_min(units, used)
  end
  return el_max(used, el_min(used + units, limit))
end

-- The time to decide at: ARGV[1], or the server's TIME when it is "".
-- Returns the time and whether it came from the caller. TIME is read once
-- per script call: the decisions of a batch share it.
local el_server_ms = nil
local function el_now(arg)
  if arg == nil or arg == '' then
    if el_server_ms == nil then
      local t = redis.call('TIME')
      el_server_ms = tonumber(t[1]) * 1000 + el_floor(tonumber(t[2]) / 1000)
    end
    return el_server_ms, false
  end
  return el_num(arg, 'now'), true
end

-- contract.rs clamp_time.
local function el_clamp(ms)
  if ms > EL_MAX_TIME_MS then
    return EL_MAX_TIME_MS
  end
  return ms
end

-- Exact floor(a / b) and a % b for integers 0 <= a < 2^53, 1 <= b < 2^53
-- (divisor.rs Divisor::div_rem): the rounded quotient is off by at most one.
local function el_divrem(a, b)
  local q = el_floor(a / b)
  local r = a - q * b
  if r < 0 then
    q = q - 1
    r = r + b
  elseif r >= b then
    q = q + 1
    r = r - b
  end
  return q, r
end

local function el_idiv(a, b)
  local q = el_divrem(a, b)
  return q
end

local function el_rem(a, b)
  local _, r = el_divrem(a, b)
  return r
end

-- Divisor::div_ceil.
local function el_div_ceil(a, b)
  local q, r = el_divrem(a, b)
  if r ~= 0 then
    q = q + 1
  end
  return q
end

-- An integer as a decimal string for Redis (tostring loses digits).
local function el_str(n)
  return string.format('%.0f', n)
end

local function el_cost_error()
  return redis.error_reply('EDGELIMIT cost exceeds limit')
end

-- Reads the fields named after `readonly` of the state at `key`, as numbers
-- in that order (an array), or nil when the key has no state or its state
-- has expired at `now` (`exp <= now`). An expired state is deleted first
-- unless `readonly`, so the script starts afresh. Each script names the
-- numbers in one table constructor (which, unlike filling an empty table,
-- allocates once).
-- The key the last el_load found a live state at, and that state's expiry:
-- el_finish leaves an unchanged expiry alone.
local el_loaded_key, el_loaded_exp = nil, nil

local function el_load(key, now, readonly, ...)
  local values = redis.call('HMGET', key, 'exp', ...)
  local exp = tonumber(values[1])
  el_loaded_key, el_loaded_exp = nil, nil
  if exp == nil then
    return nil
  end
  if exp <= now then
    if not readonly then
      redis.call('DEL', key)
    end
    return nil
  end
  el_loaded_key, el_loaded_exp = key, exp
  local n = #values
  for i = 2, n do
    values[i - 1] = tonumber(values[i])
  end
  values[n] = nil
  return values
end

-- After a decision: keeps the state for `ttl` ms when there is one, with
-- `writes` (field names and values the decision changed, or nil) stored in
-- the same HSET as the expiry; drops the state otherwise (a TTL of 0 means
-- it no longer matters). Every redis.call costs more than the arithmetic
-- around it, so a decision makes as few as it can: with the server's clock,
-- an expiry equal to the one loaded is already the key's (PEXPIRE set it
-- when it was written), and is left alone.
local function el_finish(key, has_state, ttl, now, caller_clock, readonly, writes)
  if readonly then
    return
  end
  if has_state and ttl > 0 then
    local same = not caller_clock and key == el_loaded_key and el_loaded_exp == now + ttl
    if same then
      if writes then
        redis.call('HSET', key, unpack(writes))
      end
      return
    end
    writes = writes or {}
    writes[#writes + 1] = 'exp'
    writes[#writes + 1] = el_str(now + ttl)
    redis.call('HSET', key, unpack(writes))
    local keep = ttl
    if caller_clock then
      keep = keep + EL_GRACE_MS
    end
    redis.call('PEXPIRE', key, el_str(keep))
  else
    redis.call('DEL', key)
  end
end

local function el_bool(b)
  if b then
    return 1
  end
  return 0
end

-- The reply of a rate script. A denial appends `state`, the fields of the
-- state the script left (each script's header lists them), so that the
-- client can answer further calls it proves denied without asking again.
local function el_reply(allowed, remaining, reset_ms, retry_after_ms, now, state)
  local reply = { el_bool(allowed), remaining, reset_ms, retry_after_ms, now }
  if not allowed and state ~= nil then
    for i = 1, #state do
      reply[#reply + 1] = state[i]
    end
  end
  return reply
end

-- A quota lease's arguments after a rate script's configuration, ARGV[6..8]
-- (passed in: in a batch, ARGV is the call's own, not the global): units
-- wanted in all, and a refund's window start and units (all 0 without a
-- lease).
local function el_lease_args(want, refund_start, refund_units)
  if want == nil then
    return 0, 0, 0
  end
  return el_num(want, 'want'), el_num(refund_start, 'refund_start'),
    el_num(refund_units, 'refund_units')
end

-- quota.rs extra_units: what an admitted call takes beyond its cost.
local function el_extra_units(allowed, cost, want, remaining)
  if not allowed or cost == 0 or want <= cost then
    return 0
  end
  return el_min(want - cost, remaining)
end

-- A lease's admission appends its grant to the reply: units, and the start
-- and end of the window they were taken from.
local function el_grant(reply, extra, window_start, window_end)
  if extra > 0 then
    reply[#reply + 1] = extra
    reply[#reply + 1] = window_start
    reply[#reply + 1] = window_end
  end
  return reply
end
