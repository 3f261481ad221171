-- token_bucket.lua: mirrors src/algorithm/token_bucket.rs
-- (TokenBucket::intervals_for, full_at, warm_up_ms, refilled and decide).
--
-- KEYS[1]: state hash {tokens, at = refilled_at_ms, exp}.
-- ARGV: now_ms or "", cost (or an adjustment's units), the mode ("1" a
--       read-only peek, "2" / "3" a refund / penalty: el_adjustment),
--       capacity, refill,
--       interval_ms, initial, and under a tier the limiter's own bucket:
--       its capacity, refill and initial (TokenBucket's Base).
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial the state as stored: tokens, refilled_at.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local how = el_adjustment(ARGV[3])
local capacity = el_num(ARGV[4], 'capacity')
local refill = el_num(ARGV[5], 'refill')
local interval = el_num(ARGV[6], 'interval_ms')
local initial = el_num(ARGV[7], 'initial')
local base_capacity, base_refill, base_initial = nil, nil, nil
if ARGV[8] then
  base_capacity = el_num(ARGV[8], 'base capacity')
  base_refill = el_num(ARGV[9], 'base refill')
  base_initial = el_num(ARGV[10], 'base initial')
end

-- An adjustment's units may be anything.
if cost > capacity and not how then
  return el_cost_error()
end
local now = el_clamp(raw_now)
-- The stored fields in locals: a table of named fields would cost an
-- allocation per call.
local loaded = el_load(key, raw_now, readonly, 'tokens', 'at')
-- adjust (TokenBucket::adjust): the bucket as of now (refilled, below)
-- filled by a refund or drained by a penalty is stored; then a read of it.
if how then
  local t, at = initial, now
  if loaded then
    t, at = el_min(loaded[1], capacity), loaded[2]
    local steps = el_idiv(el_max(now - at, 0), interval)
    if steps >= el_div_ceil(capacity - t, refill) then
      t, at = capacity, el_max(at, now)
    else
      t, at = t + steps * refill, at + steps * interval
    end
  end
  loaded = { capacity - el_adjusted(how, cost, capacity - t, capacity), at }
  cost = 0
end

-- Refill intervals needed to gain `tokens` more: el_div_ceil(tokens,
-- refill), written out (a local function is a closure made per call).

-- refilled: the bucket as of now, with every refill due by then applied.
local tokens, refilled_at
-- full_at of the stored bucket (never full when stored): when it fills if
-- nothing is drawn meanwhile.
local stored_full_at = nil
if loaded == nil then
  tokens, refilled_at = initial, now
else
  -- A bucket filled under a larger tier holds no more than this capacity.
  tokens, refilled_at = el_min(loaded[1], capacity), loaded[2]
  stored_full_at = refilled_at + el_div_ceil(capacity - tokens, refill) * interval
  -- A clock behind refilled_at adds nothing.
  local steps = el_idiv(el_max(now - refilled_at, 0), interval)
  if steps >= el_div_ceil(capacity - tokens, refill) then
    -- A full bucket has no refill pending.
    tokens = capacity
    refilled_at = el_max(refilled_at, now)
  else
    tokens = tokens + steps * refill
    refilled_at = refilled_at + steps * interval
  end
end

local allowed = tokens >= cost
local retry_after_ms = 0
if not allowed then
  local wait = el_div_ceil(cost - tokens, refill) * interval
  retry_after_ms = refilled_at + wait - now
end
if allowed then
  tokens = tokens - cost
end
-- Only an admission changes a bucket, and a denial or a read is a pure
-- read; but a fresh key whose initial is below capacity must be remembered
-- whatever it was asked, or its refills never start.
local has_state = loaded ~= nil
local drawn = allowed and cost > 0
local wrote = drawn or (loaded == nil and tokens < capacity)
local writes = nil
if how then
  writes = { 'tokens', el_str(loaded[1]), 'at', el_str(loaded[2]) }
elseif wrote then
  -- Between refills only the tokens change: only they are written.
  if loaded and loaded[2] == refilled_at then
    writes = { 'tokens', el_str(tokens) }
  else
    writes = { 'tokens', el_str(tokens), 'at', el_str(refilled_at) }
  end
  has_state = true
end
local full_at = now
if tokens ~= capacity then
  local wait = el_div_ceil(capacity - tokens, refill) * interval
  full_at = el_max(refilled_at + wait, now)
end
-- Kept until full for the warm-up span (what a new key takes to fill from
-- initial): counted from when a stored bucket filled, else from full_at.
local filled_at = full_at
if stored_full_at ~= nil and not drawn and tokens == capacity then
  filled_at = el_min(stored_full_at, now)
end
local keep_until = filled_at + el_div_ceil(capacity - initial, refill) * interval
-- Under a tier, kept at least until the state as stored would be full in
-- the limiter's own bucket, plus its warm-up (Base::keep_until).
local kept_tokens, kept_at = nil, nil
if wrote then
  kept_tokens, kept_at = tokens, refilled_at
elseif loaded then
  kept_tokens, kept_at = loaded[1], loaded[2]
end
if base_capacity and kept_tokens then
  local base_full_at = now
  if kept_tokens < base_capacity then
    local steps = el_div_ceil(base_capacity - kept_tokens, base_refill)
    base_full_at = el_max(kept_at + steps * interval, now)
  end
  local base_warm = el_div_ceil(base_capacity - base_initial, base_refill) * interval
  keep_until = el_max(keep_until, base_full_at + base_warm)
end
el_finish(key, has_state, el_max(keep_until - now, 0), raw_now, caller_clock, readonly, writes)
-- The bucket as stored, sent with a denial only (a denial writes only a
-- fresh bucket).
local kept = nil
if not allowed then
  kept = loaded or { tokens, refilled_at }
end
return el_reply(allowed, tokens, full_at, retry_after_ms, now, kept)
