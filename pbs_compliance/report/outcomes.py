"""What a compliance case can come to, in one place: the outcome of a pytest report, and the
word, matrix symbol and colour every report (terminal matrix, HTML, JUnit, Prometheus) uses.

Beside pytest's own passed, failed and skipped:

- `remediated`: a plugin fixed the case during the run (`api.mark_remediated`); it passes;
- `waived`: the case failed but a waiver (an `xfail` with its reason) covers it; it does not
  fail the run. Any xfail in a compliance run is shown as waived: a waivers plugin marks the
  case `xfail(reason=...)` and the reports follow from here;
- `error`: the case broke outside its check (a fixture, setup or teardown failed).
"""

from __future__ import annotations

from typing import Any, Final

PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
ERROR: Final = "error"
REMEDIATED: Final = "remediated"
WAIVED: Final = "waived"
# Worst first: a matrix cell with several cases shows the worst.
ORDER: Final = (FAILED, ERROR, WAIVED, REMEDIATED, PASSED, SKIPPED)
WORDS: Final = {
    PASSED: "Passed",
    FAILED: "Failed",
    SKIPPED: "Skipped",
    ERROR: "Error",
    REMEDIATED: "Remediated",
    WAIVED: "Waived",
}
ATTRIBUTE: Final = "pbs_outcome"  # on a report; survives xdist's serialisation (a plain attribute)


def of_report(report: Any) -> str:
    """The compliance outcome of a pytest `TestReport` (call, or a setup that skipped/failed)."""
    marked = getattr(report, ATTRIBUTE, None)
    if marked:
        return str(marked)
    if getattr(report, "wasxfail", None) is not None and report.skipped:
        return WAIVED
    if report.failed and report.when != "call":
        return ERROR
    return str(report.outcome)


def counts(outcomes: list[str] | tuple[str, ...]) -> dict[str, int]:
    """How many of each outcome, every outcome of `ORDER` present (0 when none)."""
    found = {o: 0 for o in ORDER}
    for outcome in outcomes:
        found[outcome] = found.get(outcome, 0) + 1
    return found
