-- multi.lua: several limits decided as one call, all or nothing, and the
-- block after abuse: mirrors src/algorithm/all_of.rs (AllOf::decide,
-- AllOf::peek). The build wraps each script's own part in a function
-- el_run_<name>(KEYS, ARGV) before this file, as for batch.lua.
--
-- KEYS: one key per limit, then the block's key when there is a block.
-- ARGV: now_ms or "", cost, the block's duration in ms (0: no block), the
--       mode ("0" a call, "1" a read-only peek), then per limit: its
--       script's number in el_scripts, the count of its configuration's
--       numbers, then them.
-- Reply: {now_ms, blocked_until (0: not blocked), then per limit: the
--        length of its script's reply, then that reply}. A limit's error (a
--        cost above its limit) is the script's error, raised before
--        anything is written.

local el_scripts = {
  el_run_fixed_window,
  el_run_sliding_window,
  el_run_sliding_log,
  el_run_token_bucket,
  el_run_gcra,
}

local now_arg = ARGV[1]
local cost_arg = ARGV[2]
local cost = el_num(cost_arg, 'cost')
local block_ms = el_num(ARGV[3], 'block_ms')
local peek = ARGV[4] == '1'
local raw_now, caller_clock = el_now(now_arg)

local limit_keys = #KEYS
if block_ms > 0 then
  limit_keys = limit_keys - 1
end
local runs, configs = {}, {}
local at = 5
for i = 1, limit_keys do
  runs[i] = el_scripts[tonumber(ARGV[at])]
  local count = tonumber(ARGV[at + 1])
  if runs[i] == nil or count == nil then
    return redis.error_reply('EDGELIMIT bad argument: limit ' .. i)
  end
  configs[i] = { unpack(ARGV, at + 2, at + 1 + count) }
  at = at + 2 + count
end

-- Limit i's script on its key: `units` in `mode` (its ARGV[2] and [3]).
local function el_limit(i, units, mode)
  local args = { now_arg, units, mode }
  local config = configs[i]
  for j = 1, #config do
    args[3 + j] = config[j]
  end
  return runs[i]({ KEYS[i] }, args)
end

local blocked_until = 0
local block_key = KEYS[limit_keys + 1]
if block_ms > 0 and el_load(block_key, raw_now, true) ~= nil then
  blocked_until = el_loaded_exp
end

-- Every limit decides the call without writing anything.
local replies, admitted = {}, true
for i = 1, limit_keys do
  local reply = el_limit(i, cost_arg, '1')
  if reply.err then
    return reply
  end
  replies[i] = reply
  if reply[1] == 0 then
    admitted = false
  end
end

if not peek then
  if admitted and blocked_until == 0 then
    -- The same decisions, now written.
    for i = 1, limit_keys do
      replies[i] = el_limit(i, cost_arg, '0')
    end
  else
    -- Nothing is charged: a limit that would have admitted the call tells
    -- what it has without it.
    for i = 1, limit_keys do
      if replies[i][1] == 1 then
        replies[i] = el_limit(i, '0', '1')
      end
    end
    -- A denial starts the block (a read, of cost 0, is never denied).
    if not admitted and block_ms > 0 and blocked_until == 0 then
      blocked_until = el_clamp(raw_now) + block_ms
      el_finish(block_key, true, block_ms, el_clamp(raw_now), caller_clock, false, nil)
    end
  end
end

local reply = { raw_now, blocked_until }
for i = 1, limit_keys do
  local own = replies[i]
  reply[#reply + 1] = #own
  for j = 1, #own do
    reply[#reply + 1] = own[j]
  end
end
return reply
