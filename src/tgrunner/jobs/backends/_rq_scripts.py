"""The Lua scripts of the RQ backend: every change of a job's state is one script, so it is
atomic, and leaves RQ's keys as RQ itself would (``rq info`` and rq-dashboard read them).

Every script gets the same nine queue keys (:data:`QUEUE_KEYS`) and four leading arguments:
the job key prefix (``rq:job:``), the result stream prefix (``rq:results:``), the time as RQ
writes it in a job's hash (``utcformat``; for display only) and the worker's name. Leases,
registry scores and backoff use the server's clock (``TIME``), so machines whose clocks differ
agree on when a lease ends.

Scripts that change a job take a *token*, the same for every retry of one call: a script
that finds its own token in the job (``tgrunner_op``) answers as it did the first time, so a
call retried after its answer was lost (a dropped connection) does not look refused.
"""

from __future__ import annotations

__all__ = [
    "CANCEL",
    "CLAIM",
    "CLAIM_FIELDS",
    "ENQUEUE",
    "FAIL",
    "FINISH",
    "MARK_REPLY_SENT",
    "PURGE",
    "QUEUE_KEYS",
    "RELEASE",
    "RENEW",
    "RETRY",
    "STATUS_MESSAGE",
]

QUEUE_KEYS = (
    "queue",
    "wip",
    "scheduled",
    "leases",
    "failed",
    "finished",
    "canceled",
    "unreplied",
    "queues",
)
"""The names of the keys every script gets, in order (see ``rq_keys.QueueKeys``)."""

_PRELUDE = """
local Q, WIP, SCHED, LEASES, FAILED, FINISHED, CANCELED, UNREPLIED, QUEUES =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local JOB, RESULTS, STAMP, WORKER = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local function ttl_of(jk, field, default)
  local v = tonumber(redis.call('HGET', jk, field) or '')
  if v == nil then return default end
  return v
end

local function expire_in(key, ttl)
  if ttl > 0 then redis.call('EXPIRE', key, math.ceil(ttl))
  else redis.call('PERSIST', key) end
end

local function until_score(ttl)
  if ttl < 0 then return '+inf' end
  return NOW + ttl
end

-- RQ's record of a run (rq.executions): its hash, and its entry in the job's executions set
-- and in the started registry (as JOB:EXECUTION), all scored past the lease by GRACE.
local PREFIX = string.sub(JOB, 1, #JOB - 4)  -- 'rq:' of 'rq:job:'

local function execution(id, exec, deadline, grace, owner)
  local ek, er = PREFIX .. 'execution:' .. id .. ':' .. exec, PREFIX .. 'executions:' .. id
  local ttl = math.ceil(deadline + grace - NOW) + 60
  if owner then
    redis.call('HSET', ek, 'id', exec, 'job_id', id, 'created_at', NOW, 'last_heartbeat', NOW,
      'worker_name', owner)
    redis.call('ZADD', er, deadline + grace + 60, exec)
  else
    redis.call('HSET', ek, 'last_heartbeat', NOW)
    redis.call('ZADD', er, 'XX', deadline + grace + 60, exec)
  end
  redis.call('EXPIRE', ek, ttl)
  redis.call('EXPIRE', er, ttl)
  redis.call('ZADD', WIP, deadline + grace, id .. ':' .. exec)
end

local function end_lease(id, jk)
  local exec = redis.call('HGET', jk, 'tgrunner_execution')
  if exec then
    redis.call('ZREM', WIP, id .. ':' .. exec)
    redis.call('DEL', PREFIX .. 'execution:' .. id .. ':' .. exec)
    redis.call('ZREM', PREFIX .. 'executions:' .. id, exec)
  end
  redis.call('ZREM', LEASES, id)
  redis.call('HDEL', jk, 'tgrunner_owner', 'tgrunner_execution')
end

local function owe(id, jk)
  if redis.call('HEXISTS', jk, 'tgrunner_reply_to') == 1
      and redis.call('HGET', jk, 'tgrunner_reply_sent') ~= '1' then
    redis.call('ZADD', UNREPLIED, NOW, id)
  end
end

-- Failed for good, as RQ's _handle_failure leaves a job: FailedJobRegistry, a failure Result,
-- the job and its results kept for the failure TTL.
local function fail_job(id, jk, line, exc_z, exc_b64, reply_sent)
  local ttl = ttl_of(jk, 'failure_ttl', 31536000)
  redis.call('HSET', jk, 'status', 'failed', 'ended_at', STAMP, 'exc_info', exc_z,
    'tgrunner_error', line, 'tgrunner_reply_sent', reply_sent)
  redis.call('ZADD', FAILED, until_score(ttl), id)
  local rk = RESULTS .. id
  redis.call('XADD', rk, 'MAXLEN', '10', '*', 'type', '2', 'worker_name', WORKER,
    'exc_string', exc_b64)
  expire_in(jk, ttl)
  expire_in(rk, ttl)
  owe(id, jk)
end
"""

# Leases that ran out while their job was started: a death each. ARGV[5..8]: max deaths, and
# the death error (line, zlib'd for exc_info, base64'd zlib for the Result). Appends
# "ID DEATHS queued|failed" to events.
_REAP = """
local function reap(limit, events)
  local due = redis.call('ZRANGEBYSCORE', LEASES, '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local jk = JOB .. id
    local st = redis.call('HGET', jk, 'status')
    if st == 'started' and redis.call('HEXISTS', jk, 'tgrunner_owner') == 1 then
      local deaths = redis.call('HINCRBY', jk, 'tgrunner_deaths', 1)
      end_lease(id, jk)
      if deaths >= tonumber(ARGV[5]) then
        fail_job(id, jk, ARGV[6], ARGV[7], ARGV[8], '0')
        table.insert(events, id .. ' ' .. deaths .. ' failed')
      else
        redis.call('HSET', jk, 'status', 'queued', 'started_at', '')
        redis.call('LPUSH', Q, id)
        table.insert(events, id .. ' ' .. deaths .. ' queued')
      end
    else
      -- Ended another way (canceled or failed through RQ's own tools): tidy the lease up.
      end_lease(id, jk)
      -- RQ's own cleanup of the started registry may have failed it: its reply is owed.
      if st == 'failed' then owe(id, jk) end
    end
  end
end
"""

CLAIM_FIELDS = (
    "tgrunner_function",
    "data",
    "tgrunner_attempts",
    "tgrunner_retries",
    "tgrunner_deaths",
    "tgrunner_timeout",
    "tgrunner_reply_to",
    "tgrunner_status_message_id",
)
"""The hash fields a claim reads of its job, in the order :data:`CLAIM` returns them."""

_CLAIM_FIELDS = ", ".join(f"'{name}'" for name in CLAIM_FIELDS)

ENQUEUE = (
    _PRELUDE
    + """
-- ARGV[5]: the job id; ARGV[6..]: the job's own fields, field then value; the fields every new
-- job has alike are written here (as Job.to_dict writes them). A job that is already there (an
-- enqueue retried after its answer was lost) is left alone.
local jk = JOB .. ARGV[5]
if redis.call('EXISTS', jk) == 1 then return 0 end
redis.call('HSET', jk, 'created_at', STAMP, 'enqueued_at', STAMP, 'status', 'queued',
  'success_callback_name', '', 'failure_callback_name', '', 'stopped_callback_name', '',
  'started_at', '', 'ended_at', '', 'last_heartbeat', '', 'worker_name', '', 'group_id', '',
  'tgrunner_attempts', '0', 'tgrunner_deaths', '0', 'tgrunner_reply_sent', '0',
  unpack(ARGV, 6))
redis.call('RPUSH', Q, ARGV[5])
redis.call('SADD', QUEUES, Q)
return 1
"""
)

CLAIM = (
    _PRELUDE
    + _REAP
    + """
-- ARGV[9] owner, [10] lease seconds, [11] execution id (the call's token), [12] the prefix of
-- the key of the owner's last claim, [13] seconds the started registry's score is past the
-- lease (so that RQ's own cleanup leaves our jobs to us), [14..16] the error of a job
-- tgrunner did not enqueue.
-- Returns {job id or '', its fields, seconds to the next due lease or retry, events, more
-- queued (0/1)}.
local OWNER, LEASE, EXEC, GRACE = ARGV[9], tonumber(ARGV[10]), ARGV[11], tonumber(ARGV[13])
local ck = ARGV[12] .. OWNER
local events = {}
local taken = ''
-- The owner's last claim, "EXECUTION ID": a claim retried after its answer was lost gets the
-- job that its first try took, if it still holds it.
local last = redis.call('GET', ck)
if last then
  local sep = string.find(last, ' ', 1, true)
  local exec, id = string.sub(last, 1, sep - 1), string.sub(last, sep + 1)
  if exec == EXEC and redis.call('HGET', JOB .. id, 'tgrunner_execution') == EXEC then
    taken = id
  end
end
if taken == '' then
  reap(20, events)
  local due = redis.call('ZRANGEBYSCORE', SCHED, '-inf', NOW, 'LIMIT', 0, 100)
  for _, id in ipairs(due) do
    redis.call('ZREM', SCHED, id)
    local jk = JOB .. id
    if redis.call('HGET', jk, 'status') == 'scheduled' then
      redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', STAMP)
      redis.call('RPUSH', Q, id)
    end
  end
  for _ = 1, 100 do
    local id = redis.call('LPOP', Q)
    if not id then break end
    local jk = JOB .. id
    -- Anything but queued is a stale id (canceled, or pushed twice): dropped.
    if redis.call('HGET', jk, 'status') == 'queued' then
      if redis.call('HEXISTS', jk, 'tgrunner_function') == 0 then
        fail_job(id, jk, ARGV[14], ARGV[15], ARGV[16], '0')
        table.insert(events, id .. ' 0 foreign')
      else
        redis.call('HSET', jk, 'status', 'started', 'started_at', STAMP,
          'last_heartbeat', STAMP, 'worker_name', WORKER, 'tgrunner_owner', OWNER,
          'tgrunner_execution', EXEC)
        redis.call('PERSIST', jk)
        redis.call('ZADD', LEASES, NOW + LEASE, id)
        execution(id, EXEC, NOW + LEASE, GRACE, OWNER)
        redis.call('SET', ck, EXEC .. ' ' .. id, 'EX', 60)
        taken = id
        break
      end
    end
  end
end
local fields = {}
if taken ~= '' then fields = redis.call('HMGET', JOB .. taken, """
    + _CLAIM_FIELDS
    + """) end
-- Seconds until the next lease or retry is due (a string: Lua numbers reach the client as
-- integers), '' when none is.
local nxt = nil
local a = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
local b = redis.call('ZRANGE', SCHED, 0, 0, 'WITHSCORES')
if a[2] then nxt = tonumber(a[2]) end
if b[2] and (nxt == nil or tonumber(b[2]) < nxt) then nxt = tonumber(b[2]) end
if nxt == nil then nxt = '' else nxt = tostring(nxt - NOW) end
local more = 0
if redis.call('LLEN', Q) > 0 then more = 1 end
return {taken, fields, nxt, events, more}
"""
)

_OWNED = """
local function owned(jk, owner)
  return redis.call('HGET', jk, 'status') == 'started'
    and redis.call('HGET', jk, 'tgrunner_owner') == owner
end
"""

RENEW = (
    _PRELUDE
    + _REAP
    + _OWNED
    + """
-- ARGV[9] owner, [10] lease seconds, [11] job id, [12] the started registry's grace.
-- Returns {1 when renewed else 0, events}; reaps expired leases too, so they are found
-- while every worker is busy.
local id = ARGV[11]
local jk = JOB .. id
local ok = 0
if owned(jk, ARGV[9]) then
  local exec = redis.call('HGET', jk, 'tgrunner_execution')
  redis.call('ZADD', LEASES, NOW + tonumber(ARGV[10]), id)
  execution(id, exec, NOW + tonumber(ARGV[10]), tonumber(ARGV[12]), nil)
  redis.call('HSET', jk, 'last_heartbeat', STAMP)
  ok = 1
end
local events = {}
reap(20, events)
return {ok, events}
"""
)

FINISH = (
    _PRELUDE
    + _OWNED
    + """
-- ARGV[5] owner, [6] job id, [7] token, [8] the result, base64'd ('' for none),
-- [9] reply sent (0/1). As RQ's handle_job_success: FinishedJobRegistry, a successful Result,
-- the job and its results kept for the result TTL.
local id = ARGV[6]
local jk = JOB .. id
if redis.call('HGET', jk, 'tgrunner_op') == ARGV[7] then return 1 end
if not owned(jk, ARGV[5]) then return 0 end
end_lease(id, jk)
local ttl = ttl_of(jk, 'result_ttl', 500)
redis.call('HSET', jk, 'status', 'finished', 'ended_at', STAMP, 'tgrunner_reply_sent', ARGV[9],
  'tgrunner_op', ARGV[7])
local rk = RESULTS .. id
if ARGV[8] ~= '' then
  redis.call('XADD', rk, 'MAXLEN', '10', '*', 'type', '1', 'worker_name', WORKER,
    'return_value', ARGV[8])
else
  redis.call('XADD', rk, 'MAXLEN', '10', '*', 'type', '1', 'worker_name', WORKER)
end
redis.call('ZADD', FINISHED, until_score(ttl), id)
expire_in(jk, ttl)
expire_in(rk, ttl)
owe(id, jk)
return 1
"""
)

FAIL = (
    _PRELUDE
    + _OWNED
    + """
-- ARGV[5] owner, [6] job id, [7] token, [8] error line, [9] zlib'd, [10] base64'd zlib,
-- [11] retry delay in seconds ('' for none), [12] reply sent (0/1).
-- Returns 0 (not owner's), 1 (failed for good), 2 (scheduled again), 3 (queued again).
local id = ARGV[6]
local jk = JOB .. id
local op = redis.call('HGET', jk, 'tgrunner_op')
if op and string.sub(op, 1, #ARGV[7]) == ARGV[7] then return tonumber(string.sub(op, -1)) end
if not owned(jk, ARGV[5]) then return 0 end
redis.call('HINCRBY', jk, 'tgrunner_attempts', 1)
local left = tonumber(redis.call('HGET', jk, 'retries_left') or '0') or 0
end_lease(id, jk)
if ARGV[11] ~= '' and left > 0 then
  local delay = tonumber(ARGV[11])
  redis.call('HSET', jk, 'retries_left', left - 1, 'tgrunner_error', ARGV[8], 'started_at', '')
  if delay > 0 then
    redis.call('HSET', jk, 'status', 'scheduled', 'tgrunner_op', ARGV[7] .. ' 2')
    redis.call('ZADD', SCHED, NOW + delay, id)
    return 2
  end
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', STAMP, 'tgrunner_op', ARGV[7] .. ' 3')
  redis.call('RPUSH', Q, id)
  return 3
end
redis.call('HSET', jk, 'tgrunner_op', ARGV[7] .. ' 1')
fail_job(id, jk, ARGV[8], ARGV[9], ARGV[10], ARGV[12])
return 1
"""
)

RELEASE = (
    _PRELUDE
    + _OWNED
    + """
-- ARGV[5] owner, [6] job id, [7] token. Back to the head of the queue, nothing counted.
local id = ARGV[6]
local jk = JOB .. id
if redis.call('HGET', jk, 'tgrunner_op') == ARGV[7] then return 1 end
if not owned(jk, ARGV[5]) then return 0 end
end_lease(id, jk)
redis.call('HSET', jk, 'status', 'queued', 'started_at', '', 'tgrunner_op', ARGV[7])
redis.call('LPUSH', Q, id)
return 1
"""
)

STATUS_MESSAGE = (
    _PRELUDE
    + _OWNED
    + """
-- ARGV[5] owner, [6] job id, [7] message id.
local jk = JOB .. ARGV[6]
if not owned(jk, ARGV[5]) then return 0 end
redis.call('HSET', jk, 'tgrunner_status_message_id', ARGV[7])
return 1
"""
)

MARK_REPLY_SENT = (
    _PRELUDE
    + """
-- ARGV[5] job id, [6] token. 1 for the one caller that recorded it.
local id = ARGV[5]
local jk = JOB .. id
if redis.call('HGET', jk, 'tgrunner_reply_marker') == ARGV[6] then return 1 end
local st = redis.call('HGET', jk, 'status')
local sent = redis.call('HGET', jk, 'tgrunner_reply_sent')
if (st == 'finished' or st == 'failed') and sent ~= '1' then
  redis.call('HSET', jk, 'tgrunner_reply_sent', '1', 'tgrunner_reply_marker', ARGV[6])
  redis.call('ZREM', UNREPLIED, id)
  return 1
end
return 0
"""
)

CANCEL = (
    _PRELUDE
    + """
-- ARGV[5] job id, [6] token. As RQ's Job.cancel: out of the queue or the scheduled registry,
-- into the CanceledJobRegistry; the job is kept for the failure TTL.
local id = ARGV[5]
local jk = JOB .. id
if redis.call('HGET', jk, 'tgrunner_op') == ARGV[6] then return 1 end
local st = redis.call('HGET', jk, 'status')
if st == 'queued' then redis.call('LREM', Q, 0, id)
elseif st == 'scheduled' then redis.call('ZREM', SCHED, id)
else return 0 end
redis.call('HSET', jk, 'status', 'canceled', 'ended_at', STAMP, 'tgrunner_op', ARGV[6])
redis.call('ZADD', CANCELED, NOW, id)
expire_in(jk, ttl_of(jk, 'failure_ttl', 31536000))
return 1
"""
)

RETRY = (
    _PRELUDE
    + """
-- ARGV[5] job id, [6] token. A failed, stopped or canceled job queued again as new: attempts,
-- deaths, error, results and the reply record cleared, its retries restored.
local id = ARGV[5]
local jk = JOB .. id
if redis.call('HGET', jk, 'tgrunner_op') == ARGV[6] then return 1 end
local st = redis.call('HGET', jk, 'status')
if st ~= 'failed' and st ~= 'canceled' and st ~= 'stopped' then return 0 end
redis.call('ZREM', FAILED, id)
redis.call('ZREM', CANCELED, id)
redis.call('ZREM', UNREPLIED, id)
redis.call('DEL', RESULTS .. id)
redis.call('HDEL', jk, 'exc_info', 'tgrunner_error', 'tgrunner_reply_marker')
redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', STAMP, 'started_at', '',
  'ended_at', '', 'tgrunner_attempts', '0', 'tgrunner_deaths', '0', 'tgrunner_reply_sent', '0',
  'tgrunner_op', ARGV[6])
local retries = redis.call('HGET', jk, 'tgrunner_retries')
if retries then redis.call('HSET', jk, 'retries_left', retries) end
redis.call('PERSIST', jk)
redis.call('RPUSH', Q, id)
return 1
"""
)

PURGE = (
    _PRELUDE
    + """
-- Registry entries past their TTL (the jobs' keys expire by themselves), and unreplied entries
-- whose job is gone. ARGV[5]: the failure TTL for canceled entries. Returns how many.
local n = redis.call('ZREMRANGEBYSCORE', FINISHED, '-inf', NOW)
n = n + redis.call('ZREMRANGEBYSCORE', FAILED, '-inf', NOW)
n = n + redis.call('ZREMRANGEBYSCORE', CANCELED, '-inf', NOW - tonumber(ARGV[5]))
for _, id in ipairs(redis.call('ZRANGE', UNREPLIED, 0, -1)) do
  if redis.call('EXISTS', JOB .. id) == 0 then
    redis.call('ZREM', UNREPLIED, id)
    n = n + 1
  end
end
return n
"""
)
