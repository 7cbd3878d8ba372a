"""The check registry: what a check declares, and the mistakes it refuses with the fix."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from pbs_compliance import registry
from pbs_compliance.config import StorageSpec
from pbs_compliance.registry import Check, CheckError, check
from pbs_compliance.report import matrix
from pbs_compliance.report.html import summary


@pytest.fixture(autouse=True)
def fresh_registry(pytestconfig: pytest.Config) -> Iterator[None]:
    """Checks a test declares leave with it; their markers are this run's (--strict-markers),
    as the plugin's `pytest_configure` arranges in a compliance run."""
    before = dict(registry._checks)
    registry.bind(pytestconfig)
    yield
    registry.unbind(pytestconfig)
    registry._checks.clear()
    registry._checks.update(before)


def test_the_builtin_checks_in_their_order_with_scope_and_evidence() -> None:
    assert registry.names()[:6] == ("dns", "port", "tls", "fingerprint", "drift", "nodes")
    assert registry.names(scope="storage", needs="probes") == ("dns", "port", "tls", "fingerprint")
    assert registry.names(scope="node") == ("nodes",)
    assert "unmanaged" in registry.names(scope="cluster")
    assert {"drift", "nodes", "unmanaged"} <= set(registry.names(needs="pve"))
    assert registry.names() == tuple(c.name for c in registry.BUILTIN)  # nothing added yet
    nodes = registry.get("nodes")
    assert nodes is not None
    assert nodes.function == "test_nodes"  # the marker and the function carry the same name
    assert nodes.marker_line == (
        "nodes: every PVE node the storage applies to sees it enabled and active"
    )
    assert [registry.get(n).table_title for n in ("dns", "port", "tls", "fingerprint")] == [  # type: ignore[union-attr]
        "DNS",
        "Port",
        "TLS",
        "Fingerprint",
    ]


def test_a_declared_check_is_registered_and_marks_its_function() -> None:
    source = inspect.getsource(test_a_declared_check_is_registered_and_marks_its_function)
    first = test_a_declared_check_is_registered_and_marks_its_function.__code__.co_firstlineno
    declared = first + next(
        i for i, line in enumerate(source.splitlines()) if line.lstrip().startswith("@check(")
    )

    @check("site_prefix", "every datastore starts with the site prefix")
    def test_site_prefix(pbs_storage: StorageSpec, pbs: object) -> None: ...

    entry = registry.get("site_prefix")
    assert entry == Check("site_prefix", "every datastore starts with the site prefix")
    assert entry.origin == f"{__file__}:{declared}"  # the decorator's line, where it is declared
    assert registry.names()[-1] == "site_prefix"
    assert len(registry.names()) == len(registry.BUILTIN) + 1
    assert [m.name for m in test_site_prefix.pytestmark] == ["site_prefix"]  # type: ignore[attr-defined]

    def import_again() -> None:  # the same declaration again (a module imported twice)
        @check("site_prefix", "every datastore starts with the site prefix")
        def test_site_prefix(pbs_storage: StorageSpec) -> None: ...

    import_again()
    assert registry.names().count("site_prefix") == 1


@pytest.mark.parametrize(
    ("declare", "words"),
    [
        (lambda: Check("Site-Prefix", "x"), "must be lower-case letters, digits and _"),
        (lambda: Check("x", "  "), "needs a description: it is the marker's help text"),
        (lambda: Check("x", "y", "pool"), "scope 'pool' is not one of storage, node, cluster"),
    ],
)
def test_a_malformed_declaration_says_what_to_change(declare: object, words: str) -> None:
    with pytest.raises(CheckError, match=words):
        declare()  # type: ignore[operator]


def test_the_function_name_scope_and_fixtures_must_agree() -> None:
    with pytest.raises(CheckError, match="is test_prefix; name it test_site_prefix"):

        @check("site_prefix", "d")
        def test_prefix(pbs_storage: StorageSpec) -> None: ...

    with pytest.raises(CheckError, match="takes the `pbs_node_target` fixture; add the parameter"):

        @check("per_node", "d", scope="node")
        def test_per_node(pbs_storage: StorageSpec) -> None: ...

    with pytest.raises(CheckError, match="is a cluster check but takes pbs_storage"):

        @check("whole", "d", scope="cluster")
        def test_whole(pbs_storage: StorageSpec) -> None: ...

    with pytest.raises(CheckError, match=r"'mystery' .* is not built in: give it a description"):

        @check("mystery")
        def test_mystery(pbs_storage: StorageSpec) -> None: ...


def test_another_check_of_a_taken_name_is_refused_with_where_the_first_is() -> None:
    with pytest.raises(CheckError, match=r"'drift' .* is already declared \(built in\)"):

        @check("drift", "my own drift", scope="storage")
        def test_drift(pbs_storage: StorageSpec) -> None: ...


def test_markers_reach_runs_in_progress_even_when_declared_during_collection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mine="""
        from pbs_compliance.registry import check

        @check("late_check", "declared while pytest collects", scope="cluster")
        def test_late_check():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-m", "late_check")
    result.assert_outcomes(passed=1)
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.unmanaged: PVE has no PBS storage entry*"])


def test_the_matrix_shows_every_check_that_ran_in_the_registry_order() -> None:
    @check("site_prefix", "every datastore starts with the site prefix")
    def test_site_prefix(pbs_storage: StorageSpec) -> None: ...

    outcomes = {
        ("b", "site_prefix", ""): "failed",
        ("b", "zz_worker_only", ""): "passed",  # never imported here (an xdist worker's check)
        ("b", "nodes", "pve1"): "passed",
        ("b", "nodes", "pve2"): "failed",
        ("a", "dns", ""): "remediated",
        ("a", "nodes", "pve1"): "skipped",
        ("(all)", "unmanaged", ""): "passed",
        ("(all)", "site_wide", ""): "failed",
    }

    text = matrix.render(outcomes, colour=False)

    assert text.splitlines() == [
        "+---------+-------+----------+-------------+----------------+",
        "| storage | dns   | nodes    | site_prefix | zz_worker_only |",
        "+---------+-------+----------+-------------+----------------+",
        "| a       | FIXED | skip     | -           | -              |",
        "| b       | -     | 1/2 FAIL | FAIL        | PASS           |",
        "+---------+-------+----------+-------------+----------------+",
        "unmanaged PBS entries: PASS",
        "site_wide: FAIL",
    ]
    shown = summary(outcomes)
    assert "<th style='text-align:left'>site_prefix</th>" in shown
    assert "<span style='color:#c22;font-weight:bold'>1/2 FAIL</span>" in shown
    assert "unmanaged PBS entries: <span style='color:#2a2;font-weight:bold'>PASS</span>" in shown
