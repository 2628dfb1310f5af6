"""KiotViet's GET budget (5,000 an hour), one per shop, shared by every process through Redis.

A token bucket in one Lua script: the bucket holds at most `burst` tokens and refills at
`(hourly − burst) / 3600` a second, so no rolling hour can see more than `hourly` requests.
Background work (full syncs, reconciliation) may only take a token while `reserve` tokens
would remain, which keeps headroom for the fetches that webhooks need. A 429 pauses the shop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

WEBHOOK, BACKGROUND = "webhook", "background"

_TAKE = """
local bucket, pause_key = KEYS[1], KEYS[2]
local now, rate, burst, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', pause_key) or '0')
if paused > now then return paused - now end
local state = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens - 1 >= reserve then tokens = tokens - 1 else wait = math.ceil((reserve + 1 - tokens) / rate) end
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', bucket, 7200000)
return wait
"""


@dataclass(frozen=True)
class BudgetPolicy:
    """The numbers of the bucket, derived from the hourly limit."""

    hourly: int = 5000

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
        now_ms = int(time.time() * 1000)
        keys = [f"sync:budget:{retailer}", f"sync:budget:{retailer}:paused"]
        wait_ms = int(self._take(keys=keys, args=[now_ms, self._policy.rate_per_ms, self._policy.burst, reserve]))
        return wait_ms / 1000

    def pause(self, retailer: str, seconds: float) -> None:
        """KiotViet said slow down (429): nothing is sent for this shop until then."""
        until = int((time.time() + seconds) * 1000)
        self._redis.set(f"sync:budget:{retailer}:paused", until, px=int(seconds * 1000) + 1000)
