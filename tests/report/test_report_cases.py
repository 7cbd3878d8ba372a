"""Which reports are compliance cases: collection reports reach the same hooks and are none."""

from __future__ import annotations

import pytest

from pbs_compliance.report import cases


def test_a_module_that_fails_to_import_is_a_collection_error_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    # pytest-html passes the collection report of a broken module to its table hooks, which
    # the compliance report reads; a report without user_properties must be no case.
    pytester.makepyfile(test_broken="raise ImportError('no such module: site_checks')")
    report = pytester.runpytest_inprocess("-p", "no:pbs_compliance", "--co", "-q")
    collect = [r for r in report.reprec.getreports("pytest_collectreport") if r.failed]
    assert [r.nodeid for r in collect] == ["test_broken.py"]
    assert not hasattr(collect[0], "user_properties")
    assert cases.from_report(collect[0]) is None
