-- Lease up to `limit` of a shop's pending entities as one batch, oldest first, skipping those
-- another batch holds. KEYS: prefix, ready zset, leases zset. ARGV: shop, batch id, limit, lease (ms).
-- Answers {now, pending left, entity, event, meta, entity, event, meta, ...}.
local prefix, ready, leases = KEYS[1], KEYS[2], KEYS[3]
local shop, batch, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
reclaim(prefix, shop, leases, ready, now)
local key = prefix .. 'batch:' .. batch
local answer = {now, 0}
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
  redis.call('ZADD', prefix .. 'batches', now + lease, batch)
  redis.call('ZADD', leases, now + lease, shop .. '\t' .. batch)
end
local left = redis.call('ZCARD', prefix .. 'pendq')
if left == 0 then
  redis.call('ZREM', ready, shop)
end
answer[2] = left
return answer
