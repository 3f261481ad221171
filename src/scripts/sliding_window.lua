-- sliding_window.lua: mirrors src/algorithm/sliding_window.rs
-- (SlidingWindow::view, retry_at and decide).
--
-- KEYS[1]: state hash {start = window_start_ms, cur = current,
--          prev = previous, exp}.
-- ARGV: now_ms or "", cost (or an adjustment's units), the mode ("1" a
--       read-only peek, "2" / "3" a refund / penalty: el_adjustment),
--       limit, window_ms, and
--       for a quota lease (SlidingWindow::decide_leased): want, refund's
--       window start, refund's units.
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial the state as stored (a denial changes none but a refund):
--        start, cur, prev; for a lease's admission the grant: units,
--        window start, window end.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local how = el_adjustment(ARGV[3])
local limit = el_num(ARGV[4], 'limit')
local w = el_num(ARGV[5], 'window_ms')
local want, refund_start, refund_units = el_lease_args(ARGV[6], ARGV[7], ARGV[8])

-- An adjustment's units may be anything.
if cost > limit and not how then
  return el_cost_error()
end
local now = el_clamp(raw_now)
-- The stored fields in locals: a table of named fields would cost an
-- allocation per call.
local loaded = el_load(key, raw_now, readonly, 'start', 'cur', 'prev')
local has_state = loaded ~= nil
local stored_start, stored_cur, stored_prev
if loaded then
  stored_start, stored_cur, stored_prev = loaded[1], loaded[2], loaded[3]
end

-- view: windows rolled forward; the time clamped to the state's window if
-- the clock went back.
local start = now - el_rem(now, w)
local s_start, cur, prev
if loaded and stored_start >= start then
  s_start, cur, prev = stored_start, stored_cur, stored_prev
elseif loaded and stored_start + w == start then
  s_start, cur, prev = start, 0, stored_cur
else
  s_start, cur, prev = start, 0, 0
end
local at = el_max(now, s_start)
-- A refund goes back to the window its units were taken from, current or
-- previous (where they still weigh); the rolled state is kept.
local refunded = loaded ~= nil and refund_units > 0
if refunded then
  if s_start == refund_start then
    cur = cur - el_min(refund_units, cur)
  elseif s_start == refund_start + w then
    prev = prev - el_min(refund_units, prev)
  end
end
-- adjust: the units given back to, or charged in, the current window, then
-- a read.
if how then
  cur = el_adjusted(how, cost, cur, limit)
  cost = 0
  refunded = true
end

local elapsed = at - s_start
-- All quantities below are scaled by w; validation keeps them < 2^53 (a sum
-- above 2^53 only ever compares greater than capacity, which is exact).
local weighted_previous = prev * (w - elapsed)
local capacity = limit * w

local allowed = cost == 0 or weighted_previous + (cur + cost) * w <= capacity
if allowed and cost > 0 then
  cur = cur + cost
end
local used = weighted_previous + cur * w
local remaining = el_idiv(capacity - el_min(used, capacity), w)
-- remaining × w ≤ capacity − used: the extra units fit.
local extra = el_extra_units(allowed, cost, want, remaining)
cur = cur + extra
remaining = remaining - extra
local writes = nil
if (allowed and cost > 0) or refunded then
  -- Within a window only the current count changes: only it is written.
  if loaded and stored_start == s_start and stored_prev == prev then
    writes = { 'cur', el_str(cur) }
  else
    writes = { 'start', el_str(s_start), 'cur', el_str(cur), 'prev', el_str(prev) }
  end
  has_state = true
end
local window_end = s_start + w
local reset_ms, ttl_end
if cur > 0 then
  reset_ms, ttl_end = window_end + w, window_end + w
elseif prev > 0 then
  reset_ms, ttl_end = window_end, window_end
else
  reset_ms, ttl_end = now, now
end

local retry_after_ms = 0
if not allowed then
  -- retry_at
  local retry_at
  if cur + cost <= limit then
    local room = (limit - cur - cost) * w
    local elapsed_then = w - el_min(el_idiv(room, prev), w)
    retry_at = s_start + elapsed_then
  else
    local room = (limit - cost) * w
    local elapsed_then = w - el_min(el_idiv(room, cur), w)
    retry_at = s_start + w + elapsed_then
  end
  retry_after_ms = retry_at - now
end

el_finish(key, has_state, ttl_end - now, raw_now, caller_clock, readonly, writes)
-- A denial has usage, hence a state: the one loaded, unless refunded.
local kept = loaded
if refunded and not allowed then
  kept = { s_start, cur, prev }
end
local reply = el_reply(allowed, remaining, reset_ms, retry_after_ms, now, kept)
return el_grant(reply, extra, s_start, s_start + w)
