-- fixed_window.lua: mirrors src/algorithm/fixed_window.rs (FixedWindow::decide).
--
-- KEYS[1]: state hash {start = window_start_ms, count, exp}.
-- ARGV: now_ms or "", cost (a refund's or penalty's units), the mode ("0"
--       a call, "1" a read-only peek, "2" a refund, "3" a penalty: see
--       el_adjustment), limit, window_ms, and
--       for a quota lease (FixedWindow::decide_leased): want, refund's
--       window start, refund's units.
-- Reply: {allowed, remaining, reset_ms, retry_after_ms, now_ms}, and for a
--        denial the state: start, count; for a lease's admission the
--        grant: units, window start, window end.

local key = KEYS[1]
local raw_now, caller_clock = el_now(ARGV[1])
local cost = el_num(ARGV[2], 'cost')
local readonly = ARGV[3] == '1'
local how = el_adjustment(ARGV[3])
local limit = el_num(ARGV[4], 'limit')
local window = el_num(ARGV[5], 'window_ms')
local want, refund_start, refund_units = el_lease_args(ARGV[6], ARGV[7], ARGV[8])

-- check_cost (an adjustment's units may be anything)
if cost > limit and not how then
  return el_cost_error()
end
local now = el_clamp(raw_now)
local loaded = el_load(key, raw_now, readonly, 'start', 'count')
local state = loaded and { start = loaded[1], count = loaded[2] } or nil
local has_state = state ~= nil
-- A refund to a window that is over (or never was) returns nothing.
local refunded = false
if state and refund_units > 0 and state.start == refund_start then
  state.count = state.count - el_min(refund_units, state.count)
  refunded = true
end

local current_start = now - el_rem(now, window)
-- A state from a later window means the clock went back: keep counting in
-- that window rather than starting a fresh one.
local start, count
if state and state.start >= current_start then
  start, count = state.start, state.count
else
  start, count = current_start, 0
end
local window_end = start + window
-- adjust: the units given back or charged, then a read.
if how then
  count = el_adjusted(how, cost, count, limit)
  cost = 0
  refunded = true
end

local allowed = count + cost <= limit
if allowed then
  count = count + cost
end
local extra = el_extra_units(allowed, cost, want, limit - count)
count = count + extra
local writes = nil
if (allowed and cost > 0) or refunded then
  -- Within a window only the count changes: only it is written.
  if state and state.start == start then
    writes = { 'count', el_str(count) }
  else
    writes = { 'start', el_str(start), 'count', el_str(count) }
  end
  has_state = true
end

local reset_ms = window_end
if count == 0 then
  reset_ms = now
end
local retry_after_ms = 0
if not allowed then
  retry_after_ms = window_end - now
end
local ttl = 0
if count ~= 0 then
  ttl = window_end - now
end
el_finish(key, has_state, ttl, raw_now, caller_clock, readonly, writes)
-- A count above the limit was counted under a larger tier.
local reply = el_reply(allowed, el_max(limit - count, 0), reset_ms, retry_after_ms, now, { start, count })
return el_grant(reply, extra, start, window_end)
