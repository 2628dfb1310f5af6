-- Extend a live batch's lease, and its running mark while it holds it. KEYS: prefix, leases
-- zset. ARGV: shop, batch id, lease (ms), running mark (ms).
local prefix, leases = KEYS[1], KEYS[2]
local shop, batch, lease, running_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('GET', prefix .. 'running') == batch then
  redis.call('PEXPIRE', prefix .. 'running', running_ms)
end
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + lease
redis.call('ZADD', prefix .. 'batches', 'XX', until_ms, batch)
redis.call('ZADD', leases, 'XX', until_ms, shop .. '\t' .. batch)
return until_ms
