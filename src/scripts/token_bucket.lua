-- token_bucket.lua: mirrors src/algorithm/token_bucket.rs
-- (TokenBucket::intervals_for, refilled and decide).
--
-- KEYS[1]: state hash {tokens, at = refilled_at_ms, exp}.
-- ARGV: now_ms or "", cost, peek ("1": read only), capacity, refill,
--       interval_ms, initial.
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial the state as stored: tokens, refilled_at.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local capacity = el_num(ARGV[4], 'capacity')
local refill = el_num(ARGV[5], 'refill')
local interval = el_num(ARGV[6], 'interval_ms')
local initial = el_num(ARGV[7], 'initial')

if cost > capacity then
  return el_cost_error()
end
local now = el_clamp(raw_now)
local loaded = el_load(key, raw_now, readonly, 'tokens', 'at')
local state = loaded and { tokens = loaded[1], at = loaded[2] } or nil

-- Refill intervals needed to gain `tokens` more.
local function intervals_for(tokens)
  return el_div_ceil(tokens, refill)
end

-- refilled: the bucket as of now, with every refill due by then applied.
local tokens, refilled_at
if state == nil then
  tokens, refilled_at = initial, now
else
  tokens, refilled_at = state.tokens, state.at
  -- A clock behind refilled_at adds nothing.
  local steps = el_idiv(math.max(now - refilled_at, 0), interval)
  if steps >= intervals_for(capacity - tokens) then
    -- A full bucket has no refill pending.
    tokens = capacity
    refilled_at = math.max(refilled_at, now)
  else
    tokens = tokens + steps * refill
    refilled_at = refilled_at + steps * interval
  end
end

local allowed = tokens >= cost
local retry_after_ms = 0
if not allowed then
  local wait = intervals_for(cost - tokens) * interval
  retry_after_ms = refilled_at + wait - now
end
if allowed then
  tokens = tokens - cost
end
-- Only an admission changes a bucket, and a denial or a read is a pure
-- read; but a fresh key whose initial is below capacity must be remembered
-- whatever it was asked, or its refills never start.
local has_state = state ~= nil
local wrote = (allowed and cost > 0) or (state == nil and tokens < capacity)
local writes = nil
if wrote then
  -- Between refills only the tokens change: only they are written.
  if state and state.at == refilled_at then
    writes = { 'tokens', el_str(tokens) }
  else
    writes = { 'tokens', el_str(tokens), 'at', el_str(refilled_at) }
  end
  has_state = true
end
local full_at = now
if tokens ~= capacity then
  local wait = intervals_for(capacity - tokens) * interval
  full_at = math.max(refilled_at + wait, now)
end
el_finish(key, has_state, full_at - now, raw_now, caller_clock, readonly, writes)
-- The bucket as stored.
local kept = { tokens, refilled_at }
if state and not wrote then
  kept = { state.tokens, state.at }
end
return el_reply(allowed, tokens, full_at, retry_after_ms, now, kept)
