-- Lease up to `limit` of a shop's pending entities as one batch, oldest first, skipping those
-- another batch holds. One batch of a shop runs at a time: while another one's running mark is
-- alive nothing is taken, and the drain flag is set for the time that mark has left, so that
-- deliveries queue no more drains meanwhile (the running batch wakes the next one as it ends).
-- KEYS: prefix, ready zset, leases zset. ARGV: shop, batch id, limit, lease (ms), running mark (ms).
-- Answers {now, pending left, ms another batch's mark has left (0: taken), entity, event, meta, ...}.
local prefix, ready, leases = KEYS[1], KEYS[2], KEYS[3]
local shop, batch, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local running_ms = tonumber(ARGV[5])
local now = now_ms()
reclaim(prefix, shop, leases, ready, now)
local holder, until_ms = running_mark(prefix)
if holder and holder ~= batch and until_ms > now then
  redis.call('SET', prefix .. 'drain', 'after:' .. holder, 'PX', until_ms - now)
  return {now, redis.call('ZCARD', prefix .. 'pendq'), until_ms - now}
end
redis.call('DEL', prefix .. 'drain') -- a drain has started: the next change queues another one
local key = prefix .. 'batch:' .. batch
local answer = {now, 0, 0}
local taken = 0
for _, entity in ipairs(redis.call('ZRANGE', prefix .. 'pendq', 0, limit * 4 - 1)) do
  if taken >= limit then break end
  if redis.call('HEXISTS', prefix .. 'inflight', entity) == 0 then
    local event = redis.call('HGET', prefix .. 'pending', entity)
    local meta = redis.call('HGET', prefix .. 'pendmeta', entity)
    redis.call('ZREM', prefix .. 'pendq', entity)
    if event and meta then
      redis.call('HSET', key, entity, event, 'm:' .. entity, meta)
      redis.call('HDEL', prefix .. 'pending', entity)
      redis.call('HDEL', prefix .. 'pendmeta', entity)
      redis.call('HSET', prefix .. 'inflight', entity, batch)
      table.insert(answer, entity)
      table.insert(answer, event)
      table.insert(answer, meta)
      taken = taken + 1
    end
  end
end
if taken > 0 then
  mark_running(prefix, batch, now + running_ms)
  redis.call('ZADD', prefix .. 'batches', now + lease, batch)
  redis.call('ZADD', leases, now + lease, shop .. '\t' .. batch)
end
local left = redis.call('ZCARD', prefix .. 'pendq')
if left == 0 then
  redis.call('ZREM', ready, shop)
end
answer[2] = left
return answer
