"""How a foreground lab (`pbs lab serve`) waits to be stopped: SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["catching_signals", "wait_for_signal"]


@contextlib.contextmanager
def catching_signals() -> Iterator[Callable[[], str]]:
    """SIGINT and SIGTERM are caught from here on, not only once the caller waits.

    Why: `pbs lab serve` starts the lab and writes its files before it waits; a SIGTERM in that
    window used to kill the process with Python's default handler, lab half announced and never
    stopped. Caught early, the signal is kept and the lab stops as soon as it is up. Yields
    `wait()`, which blocks until a signal has come (returns at once if one already did) and
    returns its name. The previous handlers are restored on exit."""
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    def wait() -> str:
        while not stop.wait(0.2):
            pass
        return signal.Signals(received[0]).name

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield wait
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def wait_for_signal() -> str:
    """Block until SIGINT or SIGTERM; returns the signal's name. Handlers restored after."""
    with catching_signals() as wait:
        return wait()
