"""Every Redis key the service uses, named in one place.

A shop's keys all start with `sync:{<shop_id>}:`. The braces are Redis Cluster's hash tag, so one
shop's keys live on one node and its Lua scripts may touch them together; the fixed prefix is
also what deleting a shop removes, and no other shop's key can match it (shop ids hold no
braces or glob characters: `admin.connections.SHOP_ID`).
"""

from __future__ import annotations

NAMESPACE = "sync"


def shop_prefix(shop_id: str) -> str:
    """The prefix of every key of one shop."""
    return f"{NAMESPACE}:{{{shop_id}}}:"


def shop_key(shop_id: str, *parts: object) -> str:
    """One key of a shop, e.g. `shop_key("shop-42", "applied", "product")`."""
    return shop_prefix(shop_id) + ":".join(str(part) for part in parts)


# Per shop, under shop_key(shop, ...):
STATS = "stats"  # hash outcome → count
KIND_STATS = "kindstats"  # hash "kind|outcome" → count (outcomes of changes, and "retried")
PROBLEMS = "problems"  # list of problems an operator must see
APPLIED = "applied"  # hash per kind: entity id → "order|fingerprint|read_at"
STOCK_VALUES = "stockval"  # hash base product id → sellable stock last written
STOCK_CURSOR = "stockcursor"  # where a stock read that ran out of its batch's time stopped (JSON)
UNITS = "units"  # hash per base row: unit row id → base units it holds
CATALOG = "catalog"  # hash product id → what the service knows of a row (links, images)
PENDING = "pending"  # hash entity → event JSON, waiting to be applied
PENDING_META = "pendmeta"  # hash entity → "order|fingerprint|signal|count|first"
PENDING_ORDER = "pendq"  # zset entity → when it first became pending (ms)
INFLIGHT = "inflight"  # hash entity → the batch applying it
BATCHES = "batches"  # zset batch id → when its lease ends (ms)
BATCH = "batch"  # hash per batch: entity → event JSON, "m:" + entity → meta
DRAIN = "drain"  # a drain job of this shop is queued, or "after:" + the running batch that wakes one
RUNNING = "running"  # the shop's one running batch: "batch|until" (Redis ms), renewed with its lease
BACKOFF = "backoff"  # consecutive transient failures of this shop's drains
CLAIM = "claim"  # per event id: this event was accepted once
LOCK = "lock"  # per entity of the two-way paths
LINKS = "links"  # orders made, customers linked, content known
RUN = "run"  # full-sync runs
WATERMARKS = "watermarks"  # reconciliation watermarks and checkpoints
QUARANTINE = "quarantine"  # lists: "signed" (KiotViet's own, unreadable) and "unsigned"
WARNINGS = "warnings"  # the connection's current warnings (JSON)
LAG = "lag"  # hash: histogram of seconds from a change's arrival to its write
FAILURES = "failures"  # zset: when changes failed for good, for "failures in the last hour"
RECONCILE_DUE = "reconcile-due"  # a pull of this shop is planned for this interval
# What deleting a connection keeps: which KiotViet order was made from which Abaha order and
# which customers are one, so saving the shop again cannot make an order or a customer twice.
KEPT_ON_DELETE = (LINKS,)

# Shared by all shops:
CONNECTION_PREFIX = f"{NAMESPACE}:conn:"  # + shop id: the connection and its sealed secrets
CONNECTIONS = f"{NAMESPACE}:conns"  # set of shop ids
READY = f"{NAMESPACE}:ready"  # zset shop id → since when it has pending changes
LEASES = f"{NAMESPACE}:leases"  # zset "shop\tbatch" → when the lease ends (ms)

UNKNOWN_SHOP_DELIVERIES = f"{NAMESPACE}:unknown-shop"  # hash reason → count, never bodies
QUARANTINE_REASONS = f"{NAMESPACE}:quarantine:reasons"  # hash reason → count
DELIVERIES = f"{NAMESPACE}:deliveries"  # hash "source|type|outcome" → count, types of a bounded set
RECONCILE_TICKING = f"{NAMESPACE}:reconcile:ticking"


def kiotviet_token(digest: str) -> str:
    return f"{NAMESPACE}:kvtoken:{digest}"


def budget(retailer: str) -> str:
    return f"{NAMESPACE}:budget:{retailer}"


def budget_pause(retailer: str) -> str:
    return f"{NAMESPACE}:budget:{retailer}:paused"


def budget_used(retailer: str) -> str:
    """Prefix of per-minute counters of granted requests (`:<minute>` follows)."""
    return f"{NAMESPACE}:budget:{retailer}:used"
