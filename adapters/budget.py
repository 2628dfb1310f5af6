"""KiotViet's GET budget (5,000 an hour), one per shop, shared by every process through Redis.

A token bucket in one Lua script: the bucket holds at most `burst` tokens and refills at
`(hourly − burst) / 3600` a second, so no rolling hour can see more than `hourly` requests.
Background work (full syncs, reconciliation) may only take a token while `reserve` tokens
would remain, which keeps headroom for the fetches that webhooks need. A 429 pauses the shop.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from adapters import keys

WEBHOOK, BACKGROUND = "webhook", "background"
MINIMUM_HOURLY = 100

_TAKE = """
local bucket, pause_key = KEYS[1], KEYS[2]
local clock = redis.call('TIME')  -- Redis's clock, the same for every worker host
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local rate, burst, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = tonumber(redis.call('GET', pause_key) or '0')
if paused > now then return paused - now end
local state = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
now = math.max(now, at)
local wait = 0
if tokens - 1 >= reserve then
  tokens = tokens - 1
  local minute = KEYS[3] .. ':' .. math.floor(now / 60000)  -- requests granted per minute, for operators
  redis.call('INCR', minute)
  redis.call('EXPIRE', minute, 3720)
else
  wait = math.ceil((reserve + 1 - tokens) / rate)
end
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', bucket, 7200000)
return wait
"""


@dataclass(frozen=True)
class BudgetPolicy:
    """The numbers of the bucket, derived from the hourly limit."""

    hourly: int = 5000

    def __post_init__(self) -> None:
        if self.hourly < MINIMUM_HOURLY:
            raise ValueError(f"a KiotViet budget below {MINIMUM_HOURLY} requests an hour cannot be shared")

    @property
    def burst(self) -> int:
        return max(10, self.hourly // 20)

    @property
    def rate_per_ms(self) -> float:
        return (self.hourly - self.burst) / 3_600_000

    @property
    def background_reserve(self) -> int:
        return self.burst * 2 // 5


class RequestBudget:
    """Takes one GET's worth of a shop's budget, or says how long to wait for it."""

    def __init__(self, redis_client: redis.Redis, policy: BudgetPolicy | None = None) -> None:
        self._redis = redis_client
        self._policy = policy or BudgetPolicy()
        self._take = redis_client.register_script(_TAKE)

    def take(self, retailer: str, priority: str = WEBHOOK) -> float:
        """0 when granted; otherwise the seconds to wait before asking again."""
        reserve = self._policy.background_reserve if priority == BACKGROUND else 0
        names = [keys.budget(retailer), keys.budget_pause(retailer), keys.budget_used(retailer)]
        wait_ms = int(self._take(keys=names, args=[self._policy.rate_per_ms, self._policy.burst, reserve]))
        return max(wait_ms, 0) / 1000

    def used_last_hour(self, retailer: str) -> int:
        """GET requests granted to the shop in the last sixty minutes."""
        seconds, _ = self._redis.time()  # type: ignore[misc]
        minute = int(seconds) // 60
        counted = self._redis.mget([f"{keys.budget_used(retailer)}:{minute - n}" for n in range(60)])
        return sum(int(c) for c in counted if c is not None)  # type: ignore[union-attr]

    def used_last_hour_of(self, retailers: list[str]) -> dict[str, int]:
        """`used_last_hour` of many shops in one round trip (and one for the clock)."""
        seconds, _ = self._redis.time()  # type: ignore[misc]
        minute = int(seconds) // 60
        pipe = self._redis.pipeline(transaction=False)
        for retailer in retailers:
            pipe.mget([f"{keys.budget_used(retailer)}:{minute - n}" for n in range(60)])
        return {
            r: sum(int(c) for c in counted if c is not None)
            for r, counted in zip(retailers, pipe.execute(), strict=True)
        }

    @property
    def hourly(self) -> int:
        return self._policy.hourly

    def pause(self, retailer: str, seconds: float) -> None:
        """KiotViet said slow down (429): nothing is sent for this shop until then."""
        now_seconds, now_micros = self._redis.time()  # type: ignore[misc]
        until = now_seconds * 1000 + now_micros // 1000 + int(seconds * 1000)
        self._redis.set(keys.budget_pause(retailer), until, px=int(seconds * 1000) + 1000)
