-- gcra.lua: mirrors src/algorithm/gcra.rs (Gcra::narrow_debt, far_behind and
-- decide).
--
-- KEYS[1]: state hash {tm = tat_ms, tf = tat_frac (in 1/rate ms), exp}.
-- ARGV: now_ms or "", cost (or an adjustment's units), the mode ("1" a
--       read-only peek, "2" / "3" a refund / penalty: el_adjustment), rate,
--       period_ms, burst.
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial the state (a denial changes none): tm, tf.
--
-- Debts are in units of 1/rate ms. Rust keeps debts up to 2^63 in u64 and
-- larger ones in u128 (far_behind); here a debt of 2^53 or more (only after
-- the clock went back a long way) takes the far path, which computes the
-- same values without forming the debt: it is then above the tolerance, so
-- the call is denied (unless a read) and nothing is written.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local how = el_adjustment(ARGV[3])
local rate = el_num(ARGV[4], 'rate')
local period = el_num(ARGV[5], 'period_ms')
local burst = el_num(ARGV[6], 'burst')

-- An adjustment's units may be anything.
if cost > burst and not how then
  return el_cost_error()
end
-- An adjustment is answered as a read (cost 0), after it.
local units = cost
if how then
  cost = 0
end
local now = el_clamp(raw_now)
local loaded = el_load(key, raw_now, readonly, 'tm', 'tf')
local state = loaded and { tm = loaded[1], tf = loaded[2] } or nil
local has_state = state ~= nil
-- burst x period: the largest debt at which a call is still admitted.
local tolerance = burst * period
-- cost <= burst, so cost x period <= tolerance < 2^53.
local cost_debt = cost * period

-- ceil(y / rate) for an integer y of either sign, |y| < 2^53.
local function ceil_div_signed(y)
  if y >= 0 then
    return el_div_ceil(y, rate)
  end
  return -el_idiv(-y, rate)
end

-- narrow_debt: how far the TAT is ahead of now.
local debt = 0
local behind = nil
if state and (state.tm > now or (state.tm == now and state.tf > 0)) then
  behind = state.tm - now
  debt = behind * rate + state.tf
end

if debt >= EL_MAX_EXACT then
  -- far_behind: debt = behind x rate + tf, above the tolerance.
  local until_full = behind
  if state.tf ~= 0 then
    until_full = until_full + 1
  end
  local retry_after_ms = 0
  if cost ~= 0 then
    -- ceil((debt + cost x period - tolerance) / rate)
    retry_after_ms = behind + ceil_div_signed(state.tf + cost_debt - tolerance)
  end
  el_finish(key, has_state, until_full, raw_now, caller_clock, readonly)
  return el_reply(cost == 0, 0, now + until_full, retry_after_ms, now, { state.tm, state.tf })
end

-- wanted - tolerance, where wanted = debt + cost x period; computed in this
-- order so it stays exact.
-- adjust (Gcra::adjust): in whole units of period, a refund never gives back
-- more than the debt, a penalty never charges past the tolerance; the new
-- TAT is stored (none for no debt); then a read of it.
local adjusted = nil
if how then
  if how == 'refund' then
    if units >= el_div_ceil(debt, period) then
      debt = 0
    else
      debt = debt - units * period
    end
  elseif debt < tolerance then
    if units >= el_div_ceil(tolerance - debt, period) then
      debt = tolerance
    else
      debt = debt + units * period
    end
  end
  adjusted = {}
  if debt > 0 then
    local whole, frac = el_divrem(debt, rate)
    adjusted = { 'tm', el_str(now + whole), 'tf', el_str(frac) }
  end
end

local excess = (debt - tolerance) + cost_debt
-- After the clock went back the debt can exceed the tolerance; a read
-- (cost 0) is still allowed.
local allowed = cost == 0 or excess <= 0
local debt_after = debt
if allowed then
  debt_after = debt + cost_debt
end
local whole_ms, frac = el_divrem(debt_after, rate)
local writes = nil
if allowed and cost > 0 then
  writes = { 'tm', el_str(now + whole_ms), 'tf', el_str(frac) }
  has_state = true
elseif adjusted then
  has_state = #adjusted > 0
  writes = has_state and adjusted or nil
end
local until_full = whole_ms
if frac ~= 0 then
  until_full = until_full + 1
end
local retry_after_ms = 0
if not allowed then
  retry_after_ms = el_div_ceil(excess, rate)
end
local remaining = el_idiv(tolerance - el_min(debt_after, tolerance), period)
el_finish(key, has_state, until_full, raw_now, caller_clock, readonly, writes)
-- A denial has a debt, hence a state.
local kept = nil
if state then
  kept = { state.tm, state.tf }
end
return el_reply(allowed, remaining, now + until_full, retry_after_ms, now, kept)
