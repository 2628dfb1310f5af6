-- Extend a live batch's lease. KEYS: prefix, leases zset. ARGV: shop, batch id, lease (ms).
local prefix, leases = KEYS[1], KEYS[2]
local shop, batch, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + lease
redis.call('ZADD', prefix .. 'batches', 'XX', until_ms, batch)
redis.call('ZADD', leases, 'XX', until_ms, shop .. '\t' .. batch)
return until_ms
