-- Accept a chunk of one shop's events: claim each event id once, drop what is older than what
-- was applied (or a repeat of it), coalesce the rest into one pending record per entity.
-- KEYS: prefix, ready zset, deliveries hash.  ARGV: shop, claim ttl (s), drain flag ttl (s), the
-- delivery to count ('' for none; else, joined by the unit separator \31: how many of this
-- chunk's events must be duplicates for the whole delivery to be one, then each of its types'
-- received and duplicate fields), then pairs: the event id, entity, mode, order and fingerprint
-- joined by \31, and the event JSON (one argument instead of five: a 16,000-item delivery is
-- packed in half the time).  Answers {new, coalesced, stale, duplicate, drain_needed}.
local prefix, ready, deliveries = KEYS[1], KEYS[2], KEYS[3]
local shop, claim_ttl, drain_ttl, counted = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local now = now_ms()
local new, coalesced, stale, duplicate = 0, 0, 0, 0
local by_kind = {} -- "kind|outcome" -> count, for metrics
local function tally(entity, outcome)
  local field = string.match(entity, '^([^:]*)') .. '|' .. outcome
  by_kind[field] = (by_kind[field] or 0) + 1
end
for i = 5, #ARGV, 2 do
  local id, entity, mode, order, fp = string.match(ARGV[i], '^([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)\31([^\31]*)$')
  local event = ARGV[i + 1]
  if not redis.call('SET', prefix .. 'claim:' .. id, now, 'NX', 'EX', claim_ttl) then
    duplicate = duplicate + 1
    tally(entity, 'duplicate')
  else
    local signal, drop = 0, false
    if mode == 's' then
      signal, order = now, '-'
    else
      local kind, entity_id = split_entity(entity)
      local applied = redis.call('HGET', prefix .. 'applied:' .. kind, entity_id)
      if applied then
        local ao, afp = string.match(applied, '^([^|]*)|([^|]*)')
        local o, a = tonumber(order), tonumber(ao)
        if a and (o < a or (o == a and fp == afp)) then
          drop = true
        elseif a and o == a and (mode == 'k' or mode == 'a') then
          signal = now -- equal version, other content: read what the source holds now
        end
      end
    end
    if drop then
      stale = stale + 1
      tally(entity, 'stale')
    else
      if redis.call('HEXISTS', prefix .. 'pendmeta', entity) == 1 then
        coalesced = coalesced + 1
        tally(entity, 'coalesced')
      else
        new = new + 1
      end
      put_pending(prefix, entity, event, format(mode, order, fp, signal, 1, now), now, true)
    end
  end
end
local drain_needed = 0
if new + coalesced > 0 then
  redis.call('ZADD', ready, 'NX', now, shop)
  if redis.call('SET', prefix .. 'drain', now, 'NX', 'EX', drain_ttl) then
    drain_needed = 1
  end
end
local stats = prefix .. 'stats'
if coalesced > 0 then redis.call('HINCRBY', stats, 'coalesced', coalesced) end
if stale > 0 then redis.call('HINCRBY', stats, 'stale', stale) end
if duplicate > 0 then redis.call('HINCRBY', stats, 'duplicate', duplicate) end
for field, count in pairs(by_kind) do redis.call('HINCRBY', prefix .. 'kindstats', field, count) end
if counted ~= '' then
  local fields = {}
  for field in string.gmatch(counted, '[^\31]+') do fields[#fields + 1] = field end
  local repeated = duplicate == tonumber(fields[1])
  for j = 2, #fields, 2 do
    redis.call('HINCRBY', deliveries, fields[j], 1)
    if repeated then redis.call('HINCRBY', deliveries, fields[j + 1], 1) end
  end
end
return {new, coalesced, stale, duplicate, drain_needed}
