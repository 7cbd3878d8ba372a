"""Helpers for the `pbs` command tests (imported by name, like `checks_harness`)."""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from typer.testing import Result

from pbs_compliance.lab.runner import Lab

Invoke = Callable[..., Result]


def storage(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The declaration of one storage inside a loaded config document."""
    found: dict[str, Any] = next(s for s in data["pbs_storages"] if s["name"] == name)
    return found


def as_json(result: Result) -> dict[str, Any]:
    """stdout must be exactly one JSON document."""
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def writes(lab: Lab) -> list[dict[str, Any]]:
    """The lab's non-GET API requests so far (the admin routes excluded)."""
    return [
        r
        for r in lab.requests()
        if r.get("method") != "GET" and "/_lab" not in str(r.get("path", ""))
    ]


@contextmanager
def port_8007_taken() -> Iterator[None]:
    """Hold 127.0.0.11:8007 (or find it already held by another lab on this machine)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.11", 8007))
        sock.listen(1)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
    try:
        yield
    finally:
        sock.close()


def assert_shows(text: str, *parts: str) -> None:
    """`text` holds each of `parts`; a failure names every part it lacks."""
    __tracebackhide__ = True
    missing = [part for part in parts if part not in text]
    assert not missing, f"missing {missing} in:\n{text}"
