"""Injected faults and the request log of the PVE emulator.

Faults are what a flaky PVE does to a client: slow answers, a 500 on the Nth call or on one
path, connections closed without a word, another admin writing storage.cfg between the
client's read and its write, and the 3-second delay PVE puts on every 401.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["FaultDecision", "FaultSettings", "PveFaults", "RequestLog", "redact_params"]


@dataclass(frozen=True)
class FaultSettings:
    """A snapshot of the active faults (see `PveFaults.set` for the meaning of each)."""

    latency: float = 0.0
    fail_nth: int | None = None
    fail_path: str | None = None
    fail_method: str | None = None
    fail_message: str = "lab fault: injected server error"
    fail_status: int = 500
    drop_next: int = 0
    drop_path: str | None = None
    drop_method: str | None = None
    concurrent_writer: bool = False
    auth_delay: float | None = None

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request before it is served."""

    delay: float = 0.0
    drop: bool = False
    fail_status: int | None = None
    fail_message: str = ""


FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(FaultSettings))


class PveFaults:
    """Thread-safe fault switches, settable at run time (also over `POST /_lab/faults`)."""

    def __init__(self, settings: FaultSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._count = 0

    def set(self, **changes: object) -> FaultSettings:
        """Change some switches, keep the others.

        latency: seconds added to every request. fail_nth: the Nth request from now gets
        `fail_status`/`fail_message` (once). fail_path (+ fail_method): every matching request
        fails (glob on the path, with or without `/api2/json`). drop_next: close the next N
        connections without answering. drop_path (+ drop_method): drop every matching request.
        concurrent_writer: after the next storage read, another writer changes storage.cfg
        (once per arming). auth_delay: seconds to hold back every 401.
        """
        unknown = set(changes) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)  # type: ignore[arg-type]
            if "fail_nth" in changes:
                self._count = 0
            return self._settings

    def clear(self) -> None:
        with self._lock:
            self._settings = FaultSettings()
            self._count = 0

    @property
    def settings(self) -> FaultSettings:
        with self._lock:
            return self._settings

    def decide(self, method: str, path: str, rel_path: str) -> FaultDecision:
        """Count this request and say which fault, if any, hits it."""
        with self._lock:
            s = self._settings
            self._count += 1
            if s.drop_next > 0:
                self._settings = dataclasses.replace(s, drop_next=s.drop_next - 1)
                return FaultDecision(delay=s.latency, drop=True)
            if _matches(s.drop_path, s.drop_method, method, path, rel_path):
                return FaultDecision(delay=s.latency, drop=True)
            if s.fail_nth is not None and self._count == s.fail_nth:
                self._settings = dataclasses.replace(s, fail_nth=None)
                return FaultDecision(s.latency, False, s.fail_status, s.fail_message)
            if _matches(s.fail_path, s.fail_method, method, path, rel_path):
                return FaultDecision(s.latency, False, s.fail_status, s.fail_message)
            return FaultDecision(delay=s.latency)

    def take_concurrent_writer(self) -> bool:
        """True once per arming: the caller must now play the other writer."""
        with self._lock:
            if not self._settings.concurrent_writer:
                return False
            self._settings = dataclasses.replace(self._settings, concurrent_writer=False)
            return True


def _matches(
    pattern: str | None, want_method: str | None, method: str, path: str, rel_path: str
) -> bool:
    if pattern is None:
        return False
    if want_method is not None and want_method.upper() != method:
        return False
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(rel_path, pattern)


_SECRET_KEYS = frozenset(
    {"password", "ticket", "csrfpreventiontoken", "encryption-key", "master-pubkey", "secret",
     "token", "value"}
)  # fmt: skip


def redact_params(params: Mapping[str, object]) -> dict[str, object]:
    """Parameters fit for a log: secret values replaced by `***`."""
    return {k: ("***" if k.lower() in _SECRET_KEYS else v) for k, v in params.items()}


class RequestLog:
    """Append-only JSON-lines log of every request, one line each, safe across threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def write(
        self,
        method: str,
        path: str,
        params: Mapping[str, object],
        status: int | None,
        principal: str | None,
    ) -> None:
        record = {
            "time": time.time(),
            "method": method,
            "path": path,
            "params": redact_params(params),
            "status": status,
            "principal": principal,
        }
        line = json.dumps(record, sort_keys=False) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
