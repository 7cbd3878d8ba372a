"""The matrix: a row per backup job after the storages, the coverage line under it."""

from __future__ import annotations

from pbs_compliance.report import matrix


def test_job_rows_follow_the_storage_rows_and_coverage_is_a_line() -> None:
    outcomes = {
        ("zeta", "dns", ""): "passed",
        ("alpha", "dns", ""): "passed",
        ("job:backup-a", "jobs", ""): "failed",
        ("job:aaa", "jobs", ""): "passed",
        ("(all)", "coverage", ""): "failed",
        ("(all)", "unmanaged", ""): "passed",
    }

    built = matrix.build(outcomes)

    assert built.columns == ("dns", "jobs")
    assert built.rows == (
        ("alpha", ("PASS", "-")),
        ("zeta", ("PASS", "-")),
        ("job:aaa", ("-", "PASS")),
        ("job:backup-a", ("-", "FAIL")),
    )
    assert built.footer == (("unmanaged PBS entries", "PASS"), ("backup coverage", "FAIL"))
