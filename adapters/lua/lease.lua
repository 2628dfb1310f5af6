-- Lease some entities for work outside a batch (a replayed change, a full-sync page). Entities
-- another batch holds are not leased. KEYS: prefix, ready zset, leases zset.
-- ARGV: shop, lease id, lease (ms), entities... Answers {now, leased entity, ...}.
local prefix, ready, leases = KEYS[1], KEYS[2], KEYS[3]
local shop, batch, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
reclaim(prefix, shop, leases, ready, now)
local key = prefix .. 'batch:' .. batch
local answer = {now}
for i = 4, #ARGV do
  local entity = ARGV[i]
  if redis.call('HSETNX', prefix .. 'inflight', entity, batch) == 1 then
    redis.call('HSET', key, 'l:' .. entity, '1')
    table.insert(answer, entity)
  end
end
if #answer > 1 then
  redis.call('ZADD', prefix .. 'batches', now + lease, batch)
  redis.call('ZADD', leases, now + lease, shop .. '\t' .. batch)
end
return answer
