"""A pytest plugin the benchmark loads into each measured run (`-p benchmarks.counters`).

It counts the probes this process sends, per kind and per server, by wrapping the three probe
functions (in their modules and wherever `pbs_compliance.evidence` bound them), and at exit
writes `{pid, role, probes, backup_reads, maxrss_kb}` to `$PBS_BENCH_COUNTERS_DIR/<pid>.json`.
Under xdist the controller and every worker write one file each, so a worker that probed again
would show. `backup_reads` are the calls the backup health reads made (`BackupEvidence.reads`:
PBS sessions, logins, datastore lists, usage, privileges, namespaces; PVE's cluster resources and
backup lists), as the process that gathered them counted them. The lab's own counters (DNS
questions, PBS connections, PVE's request log) are the server-side view of the same.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ENV_DIR = "PBS_BENCH_COUNTERS_DIR"
_KINDS = {
    "dns": ("pbs_compliance.probes.dns", "resolve"),
    "tcp": ("pbs_compliance.probes.tcp", "connect"),
    "tls": ("pbs_compliance.probes.tls", "handshake"),
}
_lock = threading.Lock()
_counts: dict[str, Counter[str]] = {kind: Counter() for kind in _KINDS}


def _counting(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(target: str, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            _counts[kind][str(target)] += 1
        return original(target, *args, **kwargs)

    wrapper.__bench_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _install() -> None:
    import importlib

    evidence = importlib.import_module("pbs_compliance.evidence")
    for kind, (module_name, attr) in _KINDS.items():
        module = importlib.import_module(module_name)
        original = getattr(module, attr)
        if hasattr(original, "__bench_original__"):
            continue
        wrapped = _counting(kind, original)
        setattr(module, attr, wrapped)
        for name, value in list(vars(evidence).items()):
            if value is original:
                setattr(evidence, name, wrapped)


def _backup_reads(config: pytest.Config) -> dict[str, int]:
    """What the run's backup reads counted (none when the run gathered nothing)."""
    from pbs_compliance import backup_plugin
    from pbs_compliance.session import STATE

    state = config.stash.get(STATE, None)
    evidence = state.evidence if state is not None else None
    data = evidence.extra.get(backup_plugin.KEY) if evidence is not None else None
    reads = data.get("reads") if isinstance(data, dict) else None
    return {str(k): int(v) for k, v in reads.items()} if isinstance(reads, dict) else {}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _install()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return
    workerinput = getattr(config, "workerinput", None)
    role = str(workerinput.get("workerid", "worker")) if workerinput else "controller"
    with _lock:
        probes = {kind: dict(counter) for kind, counter in _counts.items()}
    record = {
        "pid": os.getpid(),
        "role": role,
        "probes": probes,
        "backup_reads": _backup_reads(config) if workerinput is None else {},
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    path = Path(directory) / f"{os.getpid()}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
