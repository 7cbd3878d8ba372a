"""How a foreground lab (`pbs lab serve`) waits to be stopped: SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import threading

__all__ = ["wait_for_signal"]


def wait_for_signal() -> str:
    """Block until SIGINT or SIGTERM; returns the signal's name. Handlers restored after."""
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    return signal.Signals(received[0]).name
