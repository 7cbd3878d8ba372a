"""The `pbs` fixture: one object per run, the case being run as `pbs.node`, and a run's heap
held out of the garbage collector's way while its cases run (`pbs_compliance.heap`)."""

from __future__ import annotations

import atexit
import gc
import json
from typing import Any

import pytest
from checks_harness import ChecksRun, RunChecks

from pbs_compliance import heap
from pbs_compliance.lab.runner import Lab

PROBE = """
import gc
import json
import os


def test_probe(pbs_storage, pbs):
    seen = {
        "storage": pbs_storage.name,
        "node": pbs.node.nodeid,
        "fixtures": sorted(pbs.node.fixturenames),
        "frozen": gc.get_freeze_count(),
        # the permanent generation is in no generation's list: the case is held, not walked
        "case_walked": any(o is pbs.node for o in gc.get_objects()),
        "evidence_walked": any(o is pbs.evidence for o in gc.get_objects()),
        "pbs": id(pbs),
    }
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps(seen) + "\\n")
"""


def probe_run(
    lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> list[dict[str, object]]:
    (pytester.path / "checks" / "test_probe.py").write_text(PROBE, encoding="utf-8")
    log = pytester.path / "probe.log"
    run = run_checks(lab, "-k", "probe", extra_env={"PROBE_LOG": str(log)})
    assert run.result.ret == 0, run.output
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def test_pbs_is_one_object_whose_node_is_the_case_being_run(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    seen = probe_run(shared_lab, run_checks, pytester)

    assert [s["storage"] for s in seen] == ["archive", "homelab-backup", "media", "offsite"]
    assert [s["node"] for s in seen] == [f"test_probe.py::test_probe[{s['storage']}]" for s in seen]
    assert len({s["pbs"] for s in seen}) == 1
    # No `request` (nor a fixture that takes it) behind `pbs`: pytest builds a fixture
    # definition for every ask of `request`, per case.
    assert {json.dumps(s["fixtures"]) for s in seen} == {'["pbs", "pbs_storage"]'}


def test_the_heap_is_held_while_the_cases_run_and_released_after(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    assert gc.get_freeze_count() == 0
    seen = probe_run(shared_lab, run_checks, pytester)

    assert all(int(str(s["frozen"])) > 0 for s in seen)
    assert not any(s["case_walked"] or s["evidence_walked"] for s in seen)
    assert gc.get_freeze_count() == 0  # this process goes on after the in-process run


def test_a_run_stopped_before_its_cases_releases_the_heap(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    (pytester.path / "checks" / "test_broken.py").write_text("import nowhere\n", encoding="utf-8")
    run = run_checks(shared_lab)

    assert run.result.ret == pytest.ExitCode.INTERRUPTED, run.output
    assert gc.get_freeze_count() == 0


def test_pbs_node_outside_a_case_says_so() -> None:
    from pbs_compliance.session import Compliance, RunState

    state = RunState()
    compliance = Compliance(None, None, state)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no case is running"):
        _ = compliance.node


def test_the_final_collections_are_skipped_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[object] = []
    monkeypatch.setattr(heap, "_at_exit", False)
    monkeypatch.setattr(atexit, "register", registered.append)

    heap.skip_final_collections()
    heap.skip_final_collections()

    assert registered == [gc.freeze]


def test_hold_and_release_freeze_and_unfreeze() -> None:
    try:
        heap.hold()
        assert gc.get_freeze_count() > 0
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0


FACTS_PROBE = """
import json
import os

from pbs_compliance.report.cases import FACTS


def pytest_runtest_logreport(report):
    if report.when == "call":
        with open(os.environ["PROBE_LOG"], "a") as log:
            log.write(json.dumps([report.nodeid, hasattr(report, FACTS)]) + "\\n")
"""


def plugin_run(
    lab: Lab,
    run_checks: RunChecks,
    pytester: pytest.Pytester,
    plugin: str,
    *args: str,
    files: bool = True,
) -> tuple[ChecksRun, list[Any]]:
    """A compliance run with `plugin` (the text of a module that appends JSON lines to
    $PROBE_LOG) loaded by `-p`: the run, and the lines it logged."""
    (pytester.path / "run_probe.py").write_text(plugin, encoding="utf-8")
    pytester.syspathinsert()
    log = pytester.path / "probe.log"
    run = run_checks(lab, "-p", "run_probe", *args, files=files, extra_env={"PROBE_LOG": str(log)})
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return run, [json.loads(line) for line in lines]


@pytest.mark.parametrize("files", [False, True], ids=["no-files", "junit-and-html"])
def test_the_cases_facts_are_made_only_for_a_report_file(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester, files: bool
) -> None:
    run, seen = plugin_run(shared_lab, run_checks, pytester, FACTS_PROBE, "-k", "dns", files=files)

    assert run.result.ret == 0, run.output
    assert len(seen) == 4  # the dns case of each storage
    assert {has for _, has in seen} == {files}


PER_CASE_HOOKS = """
import json
import os

HOOKS = ("pytest_runtest_makereport", "pytest_runtest_logreport", "pytest_report_teststatus")


def pytest_collection_finish(session):
    manager = session.config.pluginmanager
    ours = {}
    for hook in HOOKS:
        for impl in getattr(manager.hook, hook).get_hookimpls():
            module = getattr(impl.function, "__module__", "") or ""
            if module.startswith(("pbs_compliance", "remediate")):
                ours.setdefault(hook, []).append(manager.get_name(impl.plugin))
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps({h: sorted(n) for h, n in ours.items()}) + "\\n")
"""


@pytest.mark.parametrize("files", [False, True], ids=["no-files", "junit-and-html"])
def test_a_hook_that_would_idle_is_not_registered(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester, files: bool
) -> None:
    """Every registered per-case hook is called in each phase of each case (36,000 calls at a
    thousand storages): the report files' hooks exist only in a run that writes them, the
    waivers' only in a run that declares one (the lab declares none)."""
    run, seen = plugin_run(
        shared_lab, run_checks, pytester, PER_CASE_HOOKS, "-k", "dns", files=files
    )

    assert run.result.ret == 0, run.output
    for_files = {
        "pytest_runtest_makereport": ["pbs-compliance-backups-html", "pbs-compliance-facts"],
        "pytest_runtest_logreport": ["pbs-compliance-cases"],
    }
    always = {
        "pytest_runtest_logreport": ["pbs-compliance-outcomes"],
        "pytest_report_teststatus": ["pbs_compliance"],  # REMEDIATED, for any plugin's fix
    }
    expected = {
        h: sorted(always.get(h, []) + (for_files.get(h, []) if files else []))
        for h in (
            "pytest_runtest_makereport",
            "pytest_runtest_logreport",
            "pytest_report_teststatus",
        )
    }
    assert seen == [{h: names for h, names in expected.items() if names}]


BROKEN_GATHERING = """
import pbs_compliance.session as session

REAL = session.gather_evidence


def pytest_configure(config):
    def gather_evidence(*args, **kwargs):
        raise RuntimeError("injected: the gathering itself died")

    session.gather_evidence = gather_evidence


def pytest_unconfigure(config):
    session.gather_evidence = REAL  # an in-process run: the next test's runs gather again
"""


def test_a_gathering_that_dies_is_each_cases_error_not_the_runs(
    shared_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    (pytester.path / "broken_gathering.py").write_text(BROKEN_GATHERING, encoding="utf-8")
    pytester.syspathinsert()
    run = run_checks(
        shared_lab, "-p", "broken_gathering", "-k", "dns", "--continue-on-collection-errors"
    )

    assert "INTERNALERROR" not in run.output
    # The node cases cannot be made without PVE's node list: a collection error; each case
    # that was made errors with the cause, none is judged.
    dns = {k: v for k, v in run.outcomes().items() if k.startswith("dns[")}
    assert dns == {f"dns[{s}]": "error" for s in ("archive", "homelab-backup", "media", "offsite")}
    assert "injected: the gathering itself died" in run.message("dns[archive]")
    assert gc.get_freeze_count() == 0


WHEN_PROBE = """
import json
import os

import pytest

from pbs_compliance import registry
from pbs_compliance.session import STATE


@pytest.hookimpl(tryfirst=True)  # before the case runs (and maybe fails)
def pytest_runtest_call(item):
    state = item.config.stash[STATE]
    entry = registry.of_item(item)
    seen = {
        "check": entry.name if entry else "",
        # still gathering: PVE's nodes were still waiting for the black-holed PBS (see below)
        "gathering": state.pending is not None and not state.pending.done(),
    }
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps(seen) + "\\n")
"""


def test_the_connectivity_cases_run_first_on_the_probes_while_pve_still_answers(
    lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    # The probes give up on pbs1 after 0.3 s; PVE's node views wait for it for the lab's node
    # timeout (2 s): the connectivity cases have well over a second to run before the rest.
    lab.pbs["pbs1.lab.example"].set_mode("blackhole")
    run, seen = plugin_run(
        lab, run_checks, pytester, WHEN_PROBE, "--probe-timeout", "0.3", files=False
    )

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED, run.output  # pbs1's cases
    connectivity = {"dns", "port", "tls", "fingerprint"}
    first = [s["check"] for s in seen[: 4 * len(connectivity)]]
    assert sorted(first) == sorted([*connectivity] * 4)  # 4 storages, each check once
    assert all(s["gathering"] for s in seen[: len(first)])
    rest = seen[len(first) :]
    assert {s["check"] for s in rest} >= {"drift", "nodes", "backups", "jobs", "unmanaged"}
    assert not any(s["gathering"] for s in rest)  # every other case waited for all of it
