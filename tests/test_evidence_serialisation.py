"""Evidence crosses to xdist workers as JSON, by one mechanism: every field of every type.

The sample is built from the dataclasses' own type hints, with a value unlike the default in
every field, so a field added to any evidence type is round-tripped here without anyone having
to remember this test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import types
import typing
from typing import Any

import pytest

from pbs_compliance.evidence import Evidence, LiveState, NodeScan, ServerEvidence
from pbs_compliance.probes.dns import DnsResult, ResolverAnswer
from pbs_compliance.probes.tcp import TcpResult
from pbs_compliance.probes.tls import CertificateFacts, TlsResult

EVERY_TYPE = {
    Evidence,
    ServerEvidence,
    LiveState,
    NodeScan,
    DnsResult,
    ResolverAnswer,
    TcpResult,
    TlsResult,
    CertificateFacts,
}
WHEN = dt.datetime(2026, 11, 26, 12, 30, 15, tzinfo=dt.UTC)


def sample(kind: Any, name: str = "x", seen: set[type] | None = None) -> Any:
    """A value of `kind` with nothing left at its default (dataclasses recursively)."""
    seen = set() if seen is None else seen
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), name, seen)
    if origin is typing.Literal:
        return args[-1]
    if origin is tuple:
        return (sample(args[0], name, seen), sample(args[0], f"{name}2", seen))
    if origin is list:
        return [sample(args[0], name, seen)]
    if origin is dict:
        return {f"{name}-key": sample(args[1], name, seen)}
    if dataclasses.is_dataclass(kind):
        assert isinstance(kind, type)
        seen.add(kind)
        hints = typing.get_type_hints(kind)
        values = {f.name: sample(hints[f.name], f.name, seen) for f in dataclasses.fields(kind)}
        return kind(**values)
    if kind is Any:
        return {"nested": [1, "two", None, {"three": 3.5}], "name": name}
    return {
        str: f"{name}-value",
        int: 2**160 + 7,  # a 20-byte certificate serial
        float: 1.25,
        bool: True,
        dt.datetime: WHEN,
    }[kind]


def test_every_evidence_type_round_trips_with_every_field_set() -> None:
    seen: set[type] = set()
    evidence = sample(Evidence, seen=seen)
    assert seen == EVERY_TYPE  # a new evidence type is reached (and sampled) from Evidence
    for kind in EVERY_TYPE:
        instance = sample(kind)
        for f in dataclasses.fields(kind):
            if f.default is not dataclasses.MISSING:
                assert getattr(instance, f.name) != f.default, (kind, f.name)

    text = evidence.to_json()
    back = Evidence.from_json(text)

    assert back == evidence
    assert json.loads(text)["live"]["storages"][0]["storages-key"]["nested"][3] == {"three": 3.5}
    cert = next(iter(back.servers.values())).tls.certificate
    assert cert is not None
    assert cert.not_after == WHEN
    assert cert.not_after.tzinfo is not None
    assert cert.serial == 2**160 + 7
    assert isinstance(cert.sans, tuple)


def test_the_indexes_of_live_state_are_rebuilt_not_shipped() -> None:
    live = LiveState(
        storages=[{"storage": "a", "type": "pbs"}, {"storage": "b", "type": "dir"}],
        nodes=["pve1"],
        node_views={"pve1": [{"storage": "a", "active": 1}]},
    )
    assert live.pbs_entries  # computed (cached) before shipping

    text = Evidence(live=live).to_json()
    back = Evidence.from_json(text).live

    assert "pbs_entries" not in text
    assert "_node_index" not in text
    assert set(back.pbs_entries) == {"a"}
    assert back.node_entry("pve1", "a") == {"storage": "a", "active": 1}


def test_an_empty_evidence_and_plugin_extras_round_trip() -> None:
    empty = Evidence()
    assert Evidence.from_json(empty.to_json()) == empty
    extra = Evidence(extra={"site": {"prefix": "lab-", "count": 3, "ok": True}})
    assert Evidence.from_json(extra.to_json()).extra == extra.extra


def test_a_truncated_document_is_refused_not_half_read() -> None:
    text = sample(Evidence).to_json()
    with pytest.raises(ValueError, match=r"EOF|Invalid JSON"):
        Evidence.from_json(text[: len(text) // 2])
