from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator

import pytest

from pbs_compliance.lab.pbs_server import PbsServer
from pbs_compliance.probes._common import classify_connect_error, endpoint, is_ip_literal
from pbs_compliance.probes.tcp import TcpResult, connect


def test_open_port(pbs: PbsServer) -> None:
    result = connect(pbs.address, pbs.port, timeout=1.0)
    assert result.ok
    assert result.error is None
    assert result.kind is None
    assert 0 <= result.elapsed < 1.0
    assert "open" in result.describe()


def test_refused_when_the_server_is_down(pbs: PbsServer) -> None:
    pbs.set_mode("down")
    result = connect(pbs.address, pbs.port, timeout=1.0)
    assert not result.ok
    assert result.kind == "refused"
    assert result.error is not None
    assert f"{pbs.address}:{pbs.port} refused" in result.error
    assert result.describe().startswith("TCP connection to")


@pytest.fixture
def full_backlog() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full: Linux then drops new SYNs, so connects time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    queued = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(address)
        queued.append(client)
    yield address
    for client in queued:
        client.close()
    listener.close()


def test_timeout_when_syns_are_dropped(full_backlog: tuple[str, int]) -> None:
    result = connect(full_backlog[0], full_backlog[1], timeout=0.3)
    assert result.kind == "timeout"
    assert "within 0.3 s" in (result.error or "")
    assert 0.25 < result.elapsed < 1.5


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "refused", "refused"),
        (TimeoutError("timed out"), "timeout", "no answer from"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable", "No route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable", "unreachable"),
        (OSError(errno.EACCES, "Permission denied"), "error", "cannot connect"),
    ],
)
def test_connect_errors_are_classified(exc: OSError, kind: str, words: str) -> None:
    got_kind, text = classify_connect_error(exc, "::1", 8007, 2.0)
    assert got_kind == kind
    assert words in text
    assert "[::1]:8007" in text


@pytest.mark.parametrize(
    ("text", "literal"),
    [("127.0.0.2", True), ("::1", True), ("[fe80::1]", True), ("pbs1.lab", False), ("", False)],
)
def test_ip_literals(text: str, literal: bool) -> None:
    assert is_ip_literal(text) is literal


def test_endpoint_brackets_ipv6() -> None:
    assert endpoint("127.0.0.2", 8007) == "127.0.0.2:8007"
    assert endpoint("::1", 8007) == endpoint("[::1]", 8007) == "[::1]:8007"


@pytest.mark.parametrize(
    "result",
    [
        TcpResult("127.0.0.2", 8007, True, None, 0.01),
        TcpResult("127.0.0.2", 8007, False, "connection refused", 0.002, "refused"),
    ],
)
def test_json_round_trip(result: TcpResult) -> None:
    assert TcpResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
