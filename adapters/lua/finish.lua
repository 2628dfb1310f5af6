-- Release a batch's (or a lease's) entities, each with what became of it:
--   done  applied or judged; its applied state is recorded when given
--   back  a transient failure of the whole batch: pending again, merged with anything newer
--   drop  handed to a job of its own (a failure to retry or to keep)
-- KEYS: prefix, ready zset, leases zset. ARGV: shop, batch id, then triples: entity, action,
-- applied state ("" for none). Ends the batch's running mark. Answers how many entities are still pending.
local prefix, ready, leases = KEYS[1], KEYS[2], KEYS[3]
local shop, batch = ARGV[1], ARGV[2]
local now = now_ms()
local key = prefix .. 'batch:' .. batch
local put_back = false
for i = 3, #ARGV, 3 do
  local entity, action, applied = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local held = redis.call('HGET', prefix .. 'inflight', entity) == batch
  if held then
    redis.call('HDEL', prefix .. 'inflight', entity)
  end
  if action == 'back' then
    local event = redis.call('HGET', key, entity)
    local meta = redis.call('HGET', key, 'm:' .. entity)
    if event and meta then
      put_pending(prefix, entity, event, meta, now, false)
      put_back = true
    end
  elseif action == 'done' and applied ~= '' and held then
    local kind, entity_id = split_entity(entity)
    redis.call('HSET', prefix .. 'applied:' .. kind, entity_id, applied)
  end
  redis.call('HDEL', key, entity, 'm:' .. entity, 'l:' .. entity)
end
if redis.call('EXISTS', key) == 0 then
  redis.call('ZREM', prefix .. 'batches', batch)
  redis.call('ZREM', leases, shop .. '\t' .. batch)
end
if running_mark(prefix) == batch then
  redis.call('DEL', prefix .. 'running')
  if redis.call('GET', prefix .. 'drain') == 'after:' .. batch then
    redis.call('DEL', prefix .. 'drain') -- no drain is queued: the caller wakes one if any is pending
  end
end
local left = redis.call('ZCARD', prefix .. 'pendq')
if put_back then
  redis.call('ZADD', ready, 'NX', now, shop)
end
return left
