"""Hypothesis strategies shared by the webhook fuzz tests: sample bodies bent out of shape (wrong
types, missing keys, huge numbers, bad dates, deep nesting), serialized, then broken at the byte
level (invalid UTF-8, truncation, other encodings)."""

from __future__ import annotations

import copy
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import FIXTURES

DEEP = "\x00deep:"  # a placeholder string the serializer swaps for real nesting (json.dumps would recurse)
_DEEP_TEXT = re.compile(r'"\\u0000deep:(\d+)[^"]*"')

BAD_DATES = ("2026-13-45T99:99:99", "not a date", "0000-00-00T00:00:00", "2026-11-30T10:20:30.1470000+99:00",
             "9999-12-31T23:59:59.9999999-23:59", "", "  ", "2026-02-30", "1e999", "/Date(1700000000000)/")  # fmt: skip
HUGE = (10**400, -(10**400), 2**63, -(2**63) - 1, 2**64, 1e308, -1e308)
BROKEN_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82")


def fixture_bodies(folder: str) -> dict[str, Any]:
    """Every sample body of one provider, by name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted((FIXTURES / folder).glob("*.json"))}


def odd_values() -> st.SearchStrategy[Any]:
    """Values no field expects: wrong types, extremes, bad dates, lone surrogates, deep nesting."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.sampled_from(HUGE),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(BAD_DATES),
        st.sampled_from(["\ud800", "a\udfffb", "\u0000", "\u202e", "<script>alert(1)</script>", "' OR 1=1 --"]),
        st.integers(min_value=33, max_value=3000).map(lambda depth: f"{DEEP}{depth}"),
    )  # fmt: skip
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=10), inner, max_size=3), max_leaves=6)  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*path, index))
    return found


def with_each_text_broken(body: Any) -> list[Any]:
    """One copy of the body per text in it, that text ending in a lone surrogate (half an emoji)."""
    copies = []
    for path in _leaves(body, str):
        broken = copy.deepcopy(body)
        _get(broken, path[:-1])[path[-1]] += "\ud83d"
        copies.append(broken)
    return copies


def _leaves(body: Any, kind: type | tuple[type, ...]) -> list[tuple[Any, ...]]:
    return [path for path in _paths(body) if path and isinstance(_get(body, path), kind)]


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        body = body[step]
    return body


MUTATIONS = ("replace", "delete", "recase", "wrap", "deep", "surrogate", "huge")


HAZARDS = ("deep", "surrogate", "huge")  # what a well-formed body may still carry


@st.composite
def bent(draw: st.DrawFn, body: Any, actions: tuple[str, ...] = MUTATIONS, most: int = 4) -> Any:
    """The body with a few parts replaced by odd values, removed, wrapped in a list, nested deep,
    or their keys' case changed; its texts given lone surrogates, its numbers made huge."""
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(min_value=1 if most == 1 else 0, max_value=most))):
        action = draw(st.sampled_from(actions))
        targets = {"surrogate": _leaves(body, str), "huge": _leaves(body, (int, float))}.get(action) or _paths(body)
        path = draw(st.sampled_from(targets))
        if not path:
            body = draw(odd_values())
            continue
        container, key = _get(body, path[:-1]), path[-1]
        if action == "delete":
            container.pop(key)
        elif action == "wrap":
            container[key] = [container[key]]
        elif action == "recase" and isinstance(key, str):
            container[draw(st.sampled_from([key.upper(), key.lower(), key + " "]))] = container.pop(key)
        elif action == "surrogate" and isinstance(container[key], str):
            container[key] += draw(st.sampled_from(["\ud800", "\udfff", "\ud83d"]))
        elif action == "deep":
            container[key] = f"{DEEP}{draw(st.sampled_from([33, 40, 1100, 5000, 20_000]))}"
        else:
            container[key] = draw(st.sampled_from(HUGE) if action == "huge" else odd_values())
    return body


def serialize(body: Any) -> bytes:
    """JSON text (NaN and Infinity as Python writes them), with placeholders made deep nesting."""
    text = _DEEP_TEXT.sub(
        lambda m: "[" * int(m.group(1)) + "{}" + "]" * int(m.group(1)), json.dumps(body, allow_nan=True)
    )
    return text.encode("utf-8")


@st.composite
def broken_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """The serialized body, sometimes damaged below the JSON level."""
    damage = draw(st.sampled_from(["none", "none", "invalid utf-8", "truncate", "utf-16", "bom", "binary"]))
    if damage == "invalid utf-8":
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:at] + draw(st.sampled_from(BROKEN_UTF8)) + raw[at:]
    if damage == "truncate":
        return raw[: draw(st.integers(min_value=0, max_value=max(len(raw) - 1, 0)))]
    if damage == "utf-16":
        return raw.decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass")
    if damage == "bom":
        return b"\xef\xbb\xbf" + raw
    if damage == "binary":
        return draw(st.binary(max_size=200))
    return raw


def hostile_bodies(samples: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Bytes that started as one of the samples and were bent, then maybe broken; or a sample
    with one hazard alone."""
    names = st.sampled_from(sorted(samples))
    damaged = names.flatmap(lambda name: bent(samples[name])).map(serialize).flatmap(broken_bytes)
    # a sample otherwise intact, with one hazard, so the parts past the envelope are reached often
    hazardous = names.flatmap(lambda name: bent(samples[name], HAZARDS, most=1)).map(serialize)
    return st.one_of(damaged, hazardous)


def other_headers() -> st.SearchStrategy[dict[str, str]]:
    """Headers a sender might add, with odd values (latin-1, as HTTP carries them)."""
    latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
    types = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                             "multipart/form-data; boundary=x", "application/json; charset=utf-16"])  # fmt: skip
    return st.fixed_dictionaries({}, optional={
        "Content-Type": types | latin1,
        "X-Attempt": latin1, "Content-Encoding": st.sampled_from(["gzip", "br", "identity"]) | latin1,
        "X-Request-Id": latin1, "User-Agent": latin1,
    })  # fmt: skip


def raw_body(body: bytes) -> dict[str, Any]:
    """The test client's arguments that send exactly these bytes, whatever the Content-Type says
    (given `data=`, it would build a form of its own for a multipart type)."""
    return {"input_stream": io.BytesIO(body), "content_length": len(body)}


def snapshot(redis: fakeredis.FakeRedis, ignored: Collection[bytes] = ()) -> dict[bytes, bytes | None]:
    """Every key of Redis and its value (but the `ignored` keys)."""
    return {key: redis.dump(key) for key in redis.scan_iter(count=1000) if key not in ignored}


def run_fuzz(cases: st.SearchStrategy[Any], check: Callable[[Any], None], seen: Counter[str], examples: int,
             expected: set[str], noun: str) -> None:  # fmt: skip
    """`examples` generated cases, each through `check` (which counts its outcome in `seen`);
    every outcome in `expected` must have been reached."""

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(case=cases)
    def one(case: Any) -> None:
        check(case)

    one()
    print(f"{sum(seen.values())} {noun}:", dict(sorted(seen.items())))
    # the kinds any run reaches (rarer ones, Redis down among them, have tests of their own)
    assert expected <= set(seen), seen
