"""A pytest plugin the benchmark loads into each measured run (`-p benchmarks.counters`).

It counts the probes this process sends, per kind and per server, by wrapping the three probe
functions (in their modules and wherever `pbs_compliance.evidence` bound them), and at exit
writes `{pid, role, probes, maxrss_kb}` to `$PBS_BENCH_COUNTERS_DIR/<pid>.json`. Under xdist
the controller and every worker write one file each, so a worker that probed again would show.
The lab's own counters (DNS questions, PBS connections) are the server-side view of the same.
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
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    path = Path(directory) / f"{os.getpid()}.json"
    path.write_text(json.dumps(record), encoding="utf-8")
