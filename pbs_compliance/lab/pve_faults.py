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
from typing import IO, Annotated, ClassVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "FAULT_HELP",
    "FaultDecision",
    "FaultSettings",
    "PveFaults",
    "RequestLog",
    "redact_params",
]


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@dataclass(frozen=True)
class FaultSettings:
    """A snapshot of the active faults (see `FAULT_HELP` for the meaning of each)."""

    # `fail_message=404` from the command line is the text "404", not a type error.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(coerce_numbers_to_str=True)

    latency: Seconds = 0.0
    fail_nth: Annotated[int, Field(ge=1)] | None = None
    fail_path: str | None = None
    fail_method: str | None = None
    fail_message: str = "lab fault: injected server error"
    fail_status: Annotated[int, Field(ge=400, le=599)] = 500
    drop_next: Annotated[int, Field(ge=0)] = 0
    drop_path: str | None = None
    drop_method: str | None = None
    concurrent_writer: bool = False
    auth_delay: Seconds | None = None

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


# One line per setting, for `pbs lab fault pve --help` and the error that names a wrong key.
FAULT_HELP: dict[str, str] = {
    "latency": "seconds added to every API request (e.g. latency=2)",
    "fail_nth": "the Nth request from now answers fail_status once (1 = the next one)",
    "fail_path": "every request whose path matches this glob fails (e.g. '/storage/*')",
    "fail_method": "with fail_path: only requests of this method fail (GET, POST, PUT, DELETE)",
    "fail_message": "the error message of a failed request",
    "fail_status": "the HTTP status of a failed request (400-599, default 500)",
    "drop_next": "close the next N connections without an answer",
    "drop_path": "close every connection whose request path matches this glob",
    "drop_method": "with drop_path: only requests of this method are dropped",
    "concurrent_writer": "true: right after the next storage read, another admin changes "
    "storage.cfg (once)",
    "auth_delay": "seconds PVE holds back every failed login (401); PVE itself waits ~3",
}
_SETTINGS = TypeAdapter(FaultSettings)


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
        unknown = sorted(set(changes) - FAULT_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown PVE fault setting(s): {', '.join(unknown)}; "
                f"the settings are {', '.join(FAULT_HELP)} (see `pbs lab fault pve --help`)"
            )
        with self._lock:
            self._settings = _validated(self._settings, changes)
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


def _validated(current: FaultSettings, changes: Mapping[str, object]) -> FaultSettings:
    """`current` with `changes`, each checked against its type and range."""
    try:
        return _SETTINGS.validate_python({**current.as_dict(), **changes})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if not isinstance(p, int))}="
            f"{json.dumps(e['input'], default=str)}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(f"invalid PVE fault setting: {problems}") from None


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
