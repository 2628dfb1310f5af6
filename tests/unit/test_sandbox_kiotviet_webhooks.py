"""The simulated KiotViet's webhooks: one per type, listed without secrets, signed in each style,
logged, sent only to active hooks, held back and resent on a test's command."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import responses

from tests.unit.sandbox_support import HOOK_SECRET as SECRET
from tests.unit.sandbox_support import HOOK_URL, Peers, receiving

OTHER_URL = "http://plugin.example/kiotviet"


@pytest.fixture
def peers() -> Peers:
    return Peers.start()


def test_a_second_hook_for_a_type_is_refused_whatever_its_url(peers: Peers) -> None:
    peers.hook("product.update")
    again = peers.api("POST", "/webhooks", json={"Webhook": {"Type": "product.update", "Url": OTHER_URL,
                                                              "IsActive": True, "Secret": SECRET}})  # fmt: skip
    assert again.status_code == 400
    assert again.get_json() == {"responseStatus": {"errorCode": "BadRequest", "message": "Type đã tồn tại"}}
    assert len(peers.retailer.webhooks) == 1


def test_an_inactive_hook_still_holds_its_type(peers: Peers) -> None:
    hook_id = peers.hook("stock.update")
    assert peers.control("PATCH", f"/webhooks/{hook_id}", {"isActive": False}).status_code == 200
    again = peers.api("POST", "/webhooks", json={"Webhook": {"Type": "stock.update", "Url": HOOK_URL,
                                                              "Secret": SECRET}})  # fmt: skip
    assert again.status_code == 400 and again.get_json()["responseStatus"]["message"] == "Type đã tồn tại"


def test_the_list_shows_every_hook_of_the_retailer_and_never_a_secret(peers: Peers) -> None:
    ours = peers.hook("product.update")
    theirs = peers.control("POST", "/webhooks", {"type": "order.update", "url": OTHER_URL,
                                                  "description": "MyKiotViet"}).get_json()  # fmt: skip
    listed = peers.api_get("/webhooks")
    assert listed["total"] == 2
    assert listed["data"] == [
        {"id": ours, "type": "product.update", "url": HOOK_URL, "isActive": True, "description": None},
        {"id": theirs["id"], "type": "order.update", "url": OTHER_URL, "isActive": True, "description": "MyKiotViet"},
    ]
    assert SECRET not in json.dumps(listed) and theirs["secret"] not in json.dumps(listed)


def test_a_foreign_hook_blocks_registration_until_removed_or_taken_over(peers: Peers) -> None:
    theirs = peers.control("POST", "/webhooks", {"type": "customer.update", "url": OTHER_URL}).get_json()
    refused = peers.control("POST", "/webhooks", {"type": "customer.update", "url": "http://third.example/"})
    assert refused.status_code == 400
    taken = peers.control("POST", "/webhooks", {"type": "customer.update", "url": "http://third.example/",
                                                 "replace": True}).get_json()  # fmt: skip
    assert [h["url"] for h in peers.retailer.webhooks.values()] == ["http://third.example/"]
    assert peers.control("DELETE", f"/webhooks/{taken['id']}").status_code == 200
    assert peers.control("DELETE", f"/webhooks/{theirs['id']}").status_code == 404  # already replaced
    peers.hook("customer.update")  # the type is free again


def test_an_unknown_type_is_refused(peers: Peers) -> None:
    answer = peers.api("POST", "/webhooks", json={"Webhook": {"Type": "product.created", "Url": HOOK_URL,
                                                               "Secret": SECRET}})  # fmt: skip
    assert answer.status_code == 400


def test_deleting_an_unknown_hook_answers_kiotviets_404(peers: Peers) -> None:
    answer = peers.api("DELETE", "/webhooks/999999")
    assert answer.status_code == 404 and answer.get_json()["responseStatus"]["errorCode"] == "NotFound"


@responses.activate
def test_deliveries_go_to_active_hooks_only(peers: Peers) -> None:
    received = receiving(responses.mock)
    other = receiving(responses.mock, OTHER_URL)
    hook_id = peers.hook("product.update")
    peers.control("POST", "/webhooks", {"type": "category.update", "url": OTHER_URL, "isActive": False})
    peers.control("POST", "/products/3001", {"basePrice": 1})
    peers.control("POST", "/categories/101", {"categoryName": "Áo nam"})
    peers.control("PATCH", f"/webhooks/{hook_id}", {"isActive": False})
    peers.control("POST", "/products/3001", {"basePrice": 2})
    assert [e["Notifications"][0]["Data"][0]["BasePrice"] for e in received.envelopes()] == [1]
    assert other.bodies == []


def expected_signature(style: str, body: bytes, secret: str) -> str:
    """Each style computed independently of the sandbox's code."""
    text_key = hmac.new(secret.encode(), body, hashlib.sha256)
    return {
        "hex": text_key.hexdigest(),
        "kiotviet-live": "sha1=" + text_key.hexdigest(),
        "sha256-base64": "sha256=" + base64.b64encode(text_key.digest()).decode(),
        "base64-key": hmac.new(base64.b64decode(secret), body, hashlib.sha256).hexdigest(),
    }[style]


@responses.activate
@pytest.mark.parametrize("style", ["hex", "kiotviet-live", "sha256-base64", "base64-key"])
def test_each_signature_style_signs_the_exact_body(peers: Peers, style: str) -> None:
    received = receiving(responses.mock)
    peers.hook("product.update", secret=SECRET)
    if style != "kiotviet-live":  # what real KiotViet sends is the default
        assert peers.control("POST", "/signature", {"style": style}).get_json() == {"style": style}
    peers.control("POST", "/products/3001", {"basePrice": 1})
    (body,) = received.bodies
    assert received.headers[0]["X-Hub-Signature"] == expected_signature(style, body, SECRET)


def test_an_unknown_signature_style_is_refused(peers: Peers) -> None:
    assert peers.control("POST", "/signature", {"style": "md5"}).status_code == 400
    assert peers.retailer.signature_style == "kiotviet-live"


@responses.activate
def test_a_change_not_delivered_answers_its_body_and_a_redelivery_sends_it_later(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("product.update")
    held = peers.control("POST", "/products/3001", {"basePrice": 99000}, deliver=0).get_json()
    assert held["delivered"] == [] and received.bodies == []
    envelope = held["delivery"]["body"]
    assert envelope["Attempt"] == 1 and envelope["Notifications"][0]["Data"][0]["BasePrice"] == 99000
    listed = peers.control("GET", "/deliveries").get_json()["deliveries"]
    assert [(d["id"], d["sent"]) for d in listed] == [(envelope["Id"], 0)]
    first = peers.control("POST", f"/deliveries/{envelope['Id']}/redeliver").get_json()
    again = peers.control("POST", f"/deliveries/{envelope['Id']}/redeliver").get_json()
    assert first["delivered"] == [{"url": HOOK_URL, "status": 200}] and again["delivery"]["attempt"] == 2
    assert [(e["Id"], e["Attempt"]) for e in received.envelopes()] == [(envelope["Id"], 1), (envelope["Id"], 2)]
    assert received.envelopes()[0] == envelope  # exactly what was announced


@responses.activate
def test_a_raw_body_is_sent_byte_for_byte_and_signed_as_the_retailer_signs(peers: Peers) -> None:
    received = receiving(responses.mock)
    peers.hook("stock.update", secret=SECRET)
    peers.control("POST", "/signature", {"style": "kiotviet-live"})
    raw = b'{"Id":"raw-1","Attempt":3,"Notifications":[{"Action":"stock.update.1","Data":[]}]}  '
    answer = peers.client.post(f"/_sandbox/kiotviet/{peers.retailer.name}/deliveries?type=stock.update", data=raw)
    assert answer.get_json()["delivery"]["id"] == "raw-1"
    assert received.bodies == [raw]
    assert received.headers[0]["X-Hub-Signature"] == expected_signature("kiotviet-live", raw, SECRET)
    peers.control("POST", "/deliveries/raw-1/redeliver")
    assert received.envelopes()[1]["Attempt"] == 4


def test_an_unknown_delivery_cannot_be_resent(peers: Peers) -> None:
    assert peers.control("POST", "/deliveries/nope/redeliver").status_code == 404


def test_the_log_keeps_the_latest_200_deliveries(peers: Peers) -> None:
    for price in range(205):
        peers.control("POST", "/products/3001", {"basePrice": price}, deliver=0)
    kept = peers.control("GET", "/deliveries").get_json()["deliveries"]
    assert len(kept) == 200
    assert [d["body"]["Notifications"][0]["Data"][0]["BasePrice"] for d in kept[:2]] == [5, 6]


@responses.activate
def test_every_data_changing_control_route_can_hold_its_delivery(peers: Peers) -> None:
    received = receiving(responses.mock)
    for kind in ("product.update", "stock.update", "product.delete", "category.update", "category.delete",
                 "pricebook.update", "pricebook.delete", "pricebookdetail.update", "pricebookdetail.delete",
                 "customer.update", "customer.delete", "order.update"):  # fmt: skip
        peers.hook(kind)
    order = peers.client.post(f"/_sandbox/kiotviet/{peers.retailer.name}/customers/7001", json={"name": "An"})
    assert order.status_code == 200
    changes = [("POST", "/products/3001", {"name": "x"}), ("POST", "/products/3001/stock", {"branchId": 11}),
               ("POST", "/categories/101", {"categoryName": "y"}), ("POST", "/pricebooks/201", {"name": "z"}),
               ("POST", "/pricebooks/201/prices/3001", {"price": 1}), ("DELETE", "/pricebooks/201/prices/3001", None),
               ("POST", "/customers/7001", {"name": "Bình"}), ("DELETE", "/products/3002", None),
               ("DELETE", "/categories/101", None), ("DELETE", "/pricebooks/201", None),
               ("DELETE", "/customers/7001", None)]  # fmt: skip
    before = len(received.bodies)
    for method, path, body in changes:
        answer = peers.control(method, path, body, deliver=0)
        assert answer.status_code == 200, (path, answer.get_data(as_text=True))
        assert answer.get_json()["delivered"] == [] and answer.get_json()["delivery"]["body"]["Notifications"]
    assert len(received.bodies) == before
