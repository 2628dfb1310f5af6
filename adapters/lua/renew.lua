-- Extend a live batch's lease, and its running mark while it holds it. KEYS: prefix, leases
-- zset. ARGV: shop, batch id, lease (ms), running mark (ms).
local prefix, leases = KEYS[1], KEYS[2]
local shop, batch, lease, running_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local until_ms = now + lease
if running_mark(prefix) == batch then
  mark_running(prefix, batch, now + running_ms)
end
redis.call('ZADD', prefix .. 'batches', 'XX', until_ms, batch)
redis.call('ZADD', leases, 'XX', until_ms, shop .. '\t' .. batch)
return until_ms
