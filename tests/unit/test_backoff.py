"""A shop's drain backs off while a peer is down (`workers/drain.py`, 5 s doubling to 10 min)."""

from __future__ import annotations

from collections.abc import Callable

from adapters.errors import TransientError
from tests.fakes import FakeAbaha
from tests.unit.test_catalog import deliver
from wiring import Services


def test_a_deferred_product_batch_waits_for_its_backoff(
    services: Services, work_off: Callable[[], int], abaha: FakeAbaha
) -> None:
    abaha.fail_next("put_products", TransientError("Abaha answered 503"), times=20)
    deliver(services, "product.update")
    work_off()  # runs what is queued now; a drain delayed by the backoff stays scheduled
    assert abaha.count("put_products") == 1
