-- batch.lua: several calls of the other scripts in one script call, so a
-- batch of decisions costs Redis (and the REST gateway) one command. The
-- build wraps each script's own part in a function el_run_<name>(KEYS,
-- ARGV) before this file; calls run one after another, each as atomic as
-- the whole script.
--
-- KEYS: one key per call. ARGV: per call, the script's number in
-- el_scripts, the count of its arguments, then its ARGV; or only 0: the
-- previous call's script and ARGV again (a limiter's calls made together
-- differ only in their keys, and every argument costs Redis a string).
-- Reply: per call, that script's reply, or a string: the error it raised
-- (a failed call fails alone; what it wrote before failing stays, as for a
-- script on its own).

local el_scripts = {
  el_run_fixed_window,
  el_run_sliding_window,
  el_run_sliding_log,
  el_run_token_bucket,
  el_run_gcra,
  el_run_concurrency,
}

local replies = {}
local at = 1
local run, args
-- The one key a call sees as KEYS[1]; no script changes KEYS, so one table
-- serves every call.
local keys = {}
for i = 1, #KEYS do
  local number = tonumber(ARGV[at])
  if number == 0 then
    -- The previous call's script and arguments (which no script changes).
    at = at + 1
  else
    run = el_scripts[number]
    local count = tonumber(ARGV[at + 1]) or 0
    args = { unpack(ARGV, at + 2, at + 1 + count) }
    at = at + 2 + count
  end
  keys[1] = KEYS[i]
  local ok, reply = pcall(run, keys, args)
  if type(reply) == 'table' and reply.err then
    -- An error reply (redis.error_reply), or a Redis error raised by
    -- redis.call: its message.
    reply = reply.err
  elseif not ok then
    reply = tostring(reply)
    -- A Redis error keeps its code (WRONGTYPE…); a Lua error gets one.
    if not string.find(reply, '^%u+ ') then
      reply = 'ERR ' .. reply
    end
  end
  replies[i] = reply
end
return replies
