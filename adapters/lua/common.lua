-- Shared by the pending store's scripts. A pending record's meta is
-- "mode|order|fingerprint|signal|count|first":
--   mode         k (dated by KiotViet), a (dated by Abaha, to the second), r (read from the source),
--                s (signal only)
--   order        the content's version (micros), or "-" when the record has no content yet
--   fingerprint  of the content, so a different content with an equal version is not a repeat
--   signal       Redis time (ms) of the latest "this changed, read it" (0: none)
--   count        events coalesced into this record
--   first        Redis time (ms) it became pending (the order batches are taken in)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function parse(meta)
  local m, o, fp, s, n, t = string.match(meta, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return m, o, fp, tonumber(s), tonumber(n), tonumber(t)
end

local function format(m, o, fp, s, n, t)
  return m .. '|' .. o .. '|' .. fp .. '|' .. string.format('%d', s) .. '|' .. string.format('%d', n) .. '|'
    .. string.format('%d', t)
end

-- Merge two records of one entity; `a` arrived later than `b`. Returns the merged meta and
-- which record's event to keep ('a' or 'b').
local function merge(ma, mb, now)
  local am, ao, afp, as, an, at = parse(ma)
  local bm, bo, bfp, bs, bn, bt = parse(mb)
  local keep, m, o, fp, s = 'a', am, ao, afp, math.max(as, bs)
  if ao == '-' and bo ~= '-' then
    keep, m, o, fp = 'b', bm, bo, bfp
  elseif ao ~= '-' and bo ~= '-' then
    local na, nb = tonumber(ao), tonumber(bo)
    if nb > na then
      keep, m, o, fp = 'b', bm, bo, bfp
    elseif nb == na and bfp ~= afp and (am == 'k' or am == 'a') then
      s = now -- two contents with one version: what the source holds now wins, so read it
    end
  end
  return format(m, o, fp, s, an + bn, math.min(at, bt)), keep
end

-- Make `entity` pending with this record, merged with one already pending. `arrived_later`:
-- this record arrived after the pending one (a new event), not before (a batch put back).
local function put_pending(prefix, entity, event, meta, now, arrived_later)
  local current = redis.call('HGET', prefix .. 'pendmeta', entity)
  if not current then
    redis.call('HSET', prefix .. 'pending', entity, event)
    redis.call('HSET', prefix .. 'pendmeta', entity, meta)
    local _, _, _, _, _, first = parse(meta)
    redis.call('ZADD', prefix .. 'pendq', 'NX', first, entity)
    return
  end
  local merged, keep
  if arrived_later then
    merged, keep = merge(meta, current, now)
    keep = keep == 'a'
  else
    merged, keep = merge(current, meta, now)
    keep = keep == 'b'
  end
  if keep then
    redis.call('HSET', prefix .. 'pending', entity, event)
  end
  redis.call('HSET', prefix .. 'pendmeta', entity, merged)
end

local function split_entity(entity)
  return string.match(entity, '^([^:]+):(.*)$')
end

-- Batches whose lease ran out (their worker died): their entities become pending again.
local function reclaim(prefix, shop, leases_key, ready_key, now)
  local expired = redis.call('ZRANGEBYSCORE', prefix .. 'batches', '-inf', now, 'LIMIT', 0, 20)
  for _, batch in ipairs(expired) do
    local key = prefix .. 'batch:' .. batch
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
      local field = fields[i]
      local tag, entity = string.match(field, '^(%a):(.*)$')
      if tag == nil then
        entity = field
      end
      if redis.call('HGET', prefix .. 'inflight', entity) == batch then
        redis.call('HDEL', prefix .. 'inflight', entity)
      end
      if tag == nil then
        local meta = redis.call('HGET', key, 'm:' .. entity)
        if meta then
          put_pending(prefix, entity, fields[i + 1], meta, now, false)
          redis.call('ZADD', ready_key, 'NX', now, shop)
        end
      end
    end
    redis.call('DEL', key)
    redis.call('ZREM', prefix .. 'batches', batch)
    redis.call('ZREM', leases_key, shop .. '\t' .. batch)
  end
end

-- The shop's running batch: "batch|until" (Redis ms, as leases are: by Redis's clock, not the
-- key's lifetime, which is only there to clear a dead worker's mark some time after).
local function running_mark(prefix)
  local mark = redis.call('GET', prefix .. 'running')
  if not mark then
    return nil, 0
  end
  local holder, until_ms = string.match(mark, '^([^|]*)|(%d+)$')
  return holder, tonumber(until_ms) or 0
end

local function mark_running(prefix, batch, until_ms)
  redis.call('SET', prefix .. 'running', batch .. '|' .. string.format('%d', until_ms), 'PX', 3600000)
end
