"""A compliance run's long-lived data, kept out of the cyclic garbage collector's way.

At 1,000 storages a run holds ~12,000 collected cases, the validated config and the evidence for
its whole length. Every full collection that the cases' own allocations set off walked all of
it again (~1.5 s of CPU per run, against ~0.6 s for as many trivial cases), and the interpreter's
final collections at exit walked it once more (~1.3 s). `gc.freeze` moves what exists to a
generation the collector does not visit. Almost all of it lives until the run ends anyway; the
little that was already garbage in a reference cycle (leftovers of imports and of parsing the
config) is freed at the release instead of earlier.

The plugin holds the heap when the settings are loaded, again when the cases start, and once
more when the first case that judges all the evidence has waited for it. It releases it when
pytest has finished cleaning up (so a process that goes on after an in-process run collects its
garbage as before). At interpreter exit it freezes what is left, so the final collections skip
it too.
"""

from __future__ import annotations

import atexit
import gc

__all__ = ["hold", "release", "skip_final_collections"]

_at_exit = False


def hold() -> None:
    """Everything allocated so far lives until the run ends: stop walking it."""
    gc.freeze()


def release() -> None:
    """Back in the collector's sight; a no-op when nothing is held."""
    gc.unfreeze()


def skip_final_collections() -> None:
    """At interpreter exit, freeze what is left (once per process, however many runs)."""
    global _at_exit
    if not _at_exit:
        atexit.register(gc.freeze)
        _at_exit = True
