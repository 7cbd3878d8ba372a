"""apply() against the lab's PVE API over HTTPS (proxmoxer through PveClient, TLS verified)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from remediate_lab import PBS_PASSWORD, TOKEN_SECRET, Lab, StartLab
from remediate_strategies import check_converged, scenarios

from pbs_compliance.config.model import StorageSpec
from pbs_compliance.drift import diff
from pbs_compliance.essence import essence_from_api, essence_of
from pbs_compliance.lab.storage import (
    StorageSecrets,
    StorageState,
    delete_storage,
    update_storage,
)
from pbs_compliance.pve import PveClient
from remediate import (
    Interrupted,
    Kind,
    PlanOptions,
    Reachability,
    Results,
    Status,
    StorageResult,
    apply,
    plan,
)

FP = (
    "54:52:3A:D2:43:F0:80:66:E3:D0:BB:D6:0B:28:50:9F:"
    "C6:1C:73:BD:45:EA:D0:38:BC:25:54:EE:A4:D5:D1:54"
)
ALL_REACH = {node: {"pbs1.lab": ["store1", "store2"]} for node in ("pve1", "pve2", "pve3")}
LOCAL = "dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup,vztmpl\n"
EVERYTHING = PlanOptions(allow_recreate=True, prune_unmanaged=True)
DEFAULTS = PlanOptions()


def spec(name: str, **fields: Any) -> StorageSpec:
    data: dict[str, Any] = {
        "name": name,
        "server": "pbs1.lab",
        "datastore": "store1",
        "fingerprint": FP,
        "password": SecretStr(PBS_PASSWORD),
    }
    data.update(fields)
    return StorageSpec.model_validate(data, strict=False)


def section(name: str, *extra: str, server: str = "pbs1.lab", datastore: str = "store1") -> str:
    lines = [f"pbs: {name}", f"\tserver {server}", f"\tdatastore {datastore}"]
    lines += ["\tcontent backup", f"\tfingerprint {FP}", *(f"\t{line}" for line in extra)]
    return "\n".join(lines) + "\n"


def cfg(*sections: str) -> str:
    return "\n".join([LOCAL, *sections])


def reach_ok(desired: Sequence[StorageSpec]) -> dict[str, Reachability]:
    return {s.name: Reachability(ok=True, served_fingerprint=FP) for s in desired}


def reconcile(
    lab: Lab,
    desired: Sequence[StorageSpec],
    options: PlanOptions = DEFAULTS,
    client: PveClient | None = None,
    **kwargs: Any,
) -> Results:
    """What the pytest hook and `pbs apply` do: read, plan, apply."""
    client = client or lab.client()
    reach = reach_ok(desired)
    current = plan(desired, client.storages(), options, reach)
    kwargs.setdefault("sleep", lambda _s: None)
    return apply(current, client, desired, options, reach, **kwargs)


def without_digest(entry: dict[str, object] | None) -> dict[str, object]:
    return {k: v for k, v in (entry or {}).items() if k != "digest"}


def assert_compliant(lab: Lab, *desired: StorageSpec) -> None:
    __tracebackhide__ = True
    for s in desired:
        entry = lab.entry(s.name)
        assert entry is not None, f"{s.name} is missing"
        drift = diff(essence_of(s), essence_from_api(entry))
        assert drift.compliant, drift.describe()


# ---- every action kind -----------------------------------------------------------------


def failed_result(results: Results, name: str) -> StorageResult:
    """The result of storage `name`, which must have failed."""
    result = results.for_storage(name)
    assert result is not None, results.describe()
    assert result.status == Status.FAILED, results.describe()
    return result


def test_every_action_kind_ends_without_drift_and_a_second_run_writes_nothing(
    start_lab: StartLab,
) -> None:
    lab = start_lab(
        cfg(
            section("drifted", "prune-backups keep-daily=7", "namespace old"),
            section("off-wanted-on", "disable"),
            section("on-wanted-off"),
            section("moved", server="pbs-old.lab"),
            section("stray"),
        ),
        passwords={"drifted": PBS_PASSWORD, "off-wanted-on": PBS_PASSWORD, "stray": "x"},
        reach=ALL_REACH,
    )
    desired = [
        spec("drifted", prune_backups={"keep_daily": 30}),
        spec("off-wanted-on"),
        spec("on-wanted-off", enabled=False),
        spec("moved"),
        spec("fresh", namespace="prod", nodes=["pve1", "pve2"]),
        spec("fresh-off", enabled=False, datastore="store2"),
    ]
    before = lab.live()
    results = reconcile(lab, desired, EVERYTHING)

    verbs = {r.storage: r.verb for r in results.results}
    assert verbs == {
        "drifted": "updated",
        "off-wanted-on": "enabled",
        "on-wanted-off": "disabled",
        "moved": "re-created",
        "fresh": "created",
        "fresh-off": "created",
        "stray": "deleted",
    }
    assert results.ok, results.describe()
    assert results.summary() == (
        "2 created, 1 updated, 1 enabled, 1 disabled, 1 re-created, 1 deleted, "
        "0 refused, 0 failed, 0 unchanged"
    )
    assert_compliant(lab, *desired)
    assert lab.entry("stray") is None
    local = next(e for e in before if e["storage"] == "local")
    assert without_digest(lab.entry("local")) == without_digest(local)  # never touched
    assert lab.password("fresh") == PBS_PASSWORD
    assert lab.password("moved") == PBS_PASSWORD
    # one write per step: POST + PUT enable for "fresh", DELETE + POST + PUT for "moved", ...
    assert results.writes == len(lab.writes()) == 10
    assert results.for_storage("fresh") is not None
    assert results.for_storage("fresh").steps[0].startswith("POST /storage ")  # type: ignore[union-attr]
    assert results.for_storage("fresh").steps[1] == "PUT /storage/fresh disable=0"  # type: ignore[union-attr]

    # idempotence: the next run plans nothing and sends no write request
    writes_before = len(lab.writes())
    client = lab.client()
    again = plan(desired, client.storages(), EVERYTHING, reach_ok(desired))
    assert again.is_empty, again.describe()
    second = apply(again, client, desired, EVERYTHING, reach_ok(desired))
    assert second.ok
    assert second.writes == 0
    assert len(lab.writes()) == writes_before
    assert {r.status for r in second.results} == {Status.UNCHANGED}


def test_no_secret_reaches_the_results_or_the_request_log(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("rotated")), passwords={"rotated": "old-pw"}, reach=ALL_REACH)
    desired = [spec("rotated"), spec("fresh")]
    results = reconcile(lab, desired, PlanOptions(rotate_secrets=True))
    assert results.ok, results.describe()
    assert lab.password("rotated") == PBS_PASSWORD
    assert lab.password("fresh") == PBS_PASSWORD
    assert results.for_storage("rotated").steps == (  # type: ignore[union-attr]
        "PUT /storage/rotated password=***",
    )
    log = lab.log_path.read_text(encoding="utf-8")
    for secret in (PBS_PASSWORD, TOKEN_SECRET):
        assert secret not in log
        assert secret not in results.describe()
        assert secret not in repr(results)


def test_refusals_and_notes_are_reported_and_not_ok(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("moved", server="old.lab"), section("stray")), reach=ALL_REACH)
    desired = [spec("moved")]
    results = reconcile(lab, desired)
    assert results.for_storage("moved").status == Status.REFUSED  # type: ignore[union-attr]
    assert results.for_storage("stray").status == Status.UNCHANGED  # type: ignore[union-attr]
    assert not results.ok
    assert lab.writes() == []
    assert "moved: refused - PVE cannot change server in place" in results.describe()


# ---- faults ------------------------------------------------------------------------------


def three_drifted(start_lab: StartLab) -> tuple[Lab, list[StorageSpec]]:
    lab = start_lab(
        cfg(*(section(n, "prune-backups keep-daily=1") for n in ("a-one", "b-two", "c-three"))),
        reach=ALL_REACH,
    )
    return lab, [spec(n, prune_backups={"keep_daily": 9}) for n in ("a-one", "b-two", "c-three")]


def test_an_http_500_on_one_update_leaves_the_others_remediated(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    lab.server.faults.set(
        fail_path="*/storage/b-two",
        fail_method="PUT",
        fail_message="update storage failed: unable to open file - No space left on device",
    )
    results = reconcile(lab, desired)
    failed = failed_result(results, "b-two")
    assert failed.reason == (
        "HTTP 500: update storage failed: unable to open file - No space left on device"
    )
    assert failed.writes == 0
    assert_compliant(lab, desired[0], desired[2])
    assert not diff(essence_of(desired[1]), essence_from_api(lab.entry("b-two") or {})).compliant
    assert not results.ok
    assert "b-two: failed - HTTP 500: update storage failed" in results.describe()
    assert results.summary().endswith("0 refused, 1 failed, 0 unchanged")


def test_a_dropped_connection_fails_that_storage_only(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    lab.server.faults.set(drop_path="*/storage/a-one", drop_method="PUT")
    results = reconcile(lab, desired)
    failed = failed_result(results, "a-one")
    assert "cannot reach PVE" in failed.reason
    assert "may or may not have been applied" in failed.reason
    assert_compliant(lab, desired[1], desired[2])


def test_a_concurrent_writer_causes_a_retry_not_a_lost_update(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    local_before = lab.entry("local")
    client = lab.client()
    reach = reach_ok(desired)
    lab.server.faults.set(concurrent_writer=True)  # saves storage.cfg right after our read
    current = plan(desired, client.storages(), PlanOptions(), reach)
    sleeps: list[float] = []
    results = apply(
        current, client, desired, PlanOptions(), reach, backoff=0.01, sleep=sleeps.append
    )
    first = results.for_storage("a-one")
    assert first is not None
    assert first.status == Status.CHANGED
    assert first.retries == 1
    assert sleeps == [0.01]
    assert results.ok
    assert_compliant(lab, *desired)
    # the other writer's change survived ours: it rotated local's content list
    local_after = lab.entry("local")
    assert local_after is not None
    assert local_before is not None
    assert local_after["content"] != local_before["content"]
    conflicts = [r for r in lab.writes() if r["status"] == 500]
    assert len(conflicts) == 1


def test_a_writer_changing_the_same_storage_is_re_planned_against(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    client = lab.client()
    reach = reach_ok(desired)
    current = plan(desired, client.storages(), PlanOptions(), reach)
    # another admin edits a-one between our read and our write
    lab.server.store.write(
        lambda s: update_storage(s, {"storage": "a-one", "namespace": "theirs", "port": "8010"})
    )
    results = apply(current, client, desired, PlanOptions(), reach, sleep=lambda _s: None)
    assert results.for_storage("a-one").retries == 1  # type: ignore[union-attr]
    assert results.ok
    assert_compliant(lab, *desired)  # their namespace and port are gone too: declared unset


def test_retries_are_bounded_with_exponential_backoff(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    desired = desired[:1]
    sleeps: list[float] = []

    def sleep_and_rearm(seconds: float) -> None:
        sleeps.append(seconds)
        lab.server.faults.set(concurrent_writer=True)

    lab.server.faults.set(concurrent_writer=True)
    results = reconcile(lab, desired, max_retries=3, backoff=0.01, sleep=sleep_and_rearm)
    failed = failed_result(results, "a-one")
    assert failed.retries == 3
    assert "gave up after 3 retries" in failed.reason
    assert "detected modified configuration" in failed.reason
    assert sleeps == [0.01, 0.02, 0.04]


def test_a_timeout_is_reported_not_hung(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    client = lab.client(timeout=0.3)
    reach = reach_ok(desired)
    current = plan(desired, client.storages(), PlanOptions(), reach)
    lab.server.faults.set(latency=1.0)
    started = time.monotonic()
    results = apply(current, client, desired, PlanOptions(), reach)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5  # three storages, each given up after 0.3 s
    statuses = {r.storage: r.status for r in results.results}
    assert statuses == dict.fromkeys(("a-one", "b-two", "c-three"), Status.FAILED)
    first = results.for_storage("a-one")
    assert first is not None
    assert "did not answer within 0.3 s" in first.reason
    assert "may or may not have been applied" in first.reason
    # once PVE answers again, a new run converges
    lab.server.faults.clear()
    assert reconcile(lab, desired).ok
    assert_compliant(lab, *desired)


# ---- creating safely on every node ---------------------------------------------------------


def test_a_create_is_enabled_only_after_every_node_reaches_the_pbs(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    desired = [spec("fresh")]
    results = reconcile(lab, desired)
    assert results.ok, results.describe()
    paths = [(r["method"], r["path"]) for r in lab.requests() if "/nodes" in r["path"]]
    scans = [p for _, p in paths if p.endswith("/scan/pbs")]
    views = [p for _, p in paths if p.endswith("/storage")]
    assert len(scans) == 3  # every node scanned before the enable
    assert len(views) == 3  # and every node confirmed it active after
    writes = [(r["method"], r["params"].get("disable")) for r in lab.writes()]
    assert writes == [("POST", "1"), ("PUT", "0")]


def test_an_unreachable_pbs_on_create_leaves_the_entry_disabled_and_failed(
    start_lab: StartLab,
) -> None:
    reach = {"pve1": ALL_REACH["pve1"], "pve2": ALL_REACH["pve2"], "pve3": {}}
    lab = start_lab(cfg(), reach=reach)
    desired = [spec("fresh")]
    results = reconcile(lab, desired)
    failed = failed_result(results, "fresh")
    assert failed.unreachable_nodes == ("pve3",)
    assert failed.writes == 1
    assert "left disabled" in failed.reason
    assert "node pve3 (error fetching datastores - 500 Can't connect to pbs1.lab" in failed.reason
    entry = lab.entry("fresh")
    assert entry is not None
    assert entry["disable"] == 1  # nothing half-made: inert, and no node tries to use it
    # once pve3 reaches the PBS, the next run enables it (verified on every node)
    lab.nodes["pve3"].reach = dict(ALL_REACH["pve3"])
    again = reconcile(lab, desired)
    assert again.for_storage("fresh").verb == "enabled"  # type: ignore[union-attr]
    assert_compliant(lab, *desired)


def test_only_the_nodes_an_entry_applies_to_are_checked(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach={"pve1": ALL_REACH["pve1"], "pve2": ALL_REACH["pve2"]})
    desired = [spec("fresh", nodes=["pve1", "pve2"])]
    results = reconcile(lab, desired)
    assert results.ok, results.describe()
    assert lab.nodes["pve3"].calls == []
    assert_compliant(lab, *desired)


def test_an_entry_no_node_sees_active_is_disabled_again(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    lab.nodes["pve2"].broken_activation = True
    desired = [spec("fresh")]
    results = reconcile(lab, desired)
    failed = failed_result(results, "fresh")
    assert failed.unreachable_nodes == ("pve2",)
    assert "disabled again" in failed.reason
    assert [(r["method"], r["params"].get("disable")) for r in lab.writes()] == [
        ("POST", "1"),
        ("PUT", "0"),
        ("PUT", "1"),
    ]
    assert lab.entry("fresh")["disable"] == 1  # type: ignore[index]


def test_enabling_an_existing_entry_is_verified_and_undone_on_failure(start_lab: StartLab) -> None:
    lab = start_lab(
        cfg(section("sleeping", "disable")),
        passwords={"sleeping": PBS_PASSWORD},
        reach={"pve1": ALL_REACH["pve1"]},
    )
    desired = [spec("sleeping", password=None)]  # no password: nothing to check nodes with first
    results = reconcile(lab, desired)
    failed = failed_result(results, "sleeping")
    assert failed.unreachable_nodes == ("pve2", "pve3")
    assert "nodes pve2 (not active), pve3 (not active)" in failed.reason
    assert "if PVE's stored password is wrong: declare `password`" in failed.reason
    assert lab.entry("sleeping")["disable"] == 1  # type: ignore[index]
    assert results.summary().startswith("0 created, 0 updated, 0 enabled, 0 disabled")


def test_enabling_an_existing_entry_checks_every_node_first_and_writes_nothing_on_failure(
    start_lab: StartLab,
) -> None:
    lab = start_lab(
        cfg(section("sleeping", "disable")),
        passwords={"sleeping": PBS_PASSWORD},
        reach={"pve1": ALL_REACH["pve1"]},
    )
    failed = reconcile(lab, [spec("sleeping")]).results[0]
    assert failed.status == Status.FAILED
    assert failed.unreachable_nodes == ("pve2", "pve3")
    assert failed.reason.startswith(
        "left disabled: nodes pve2 (error fetching datastores - 500 Can't connect to pbs1.lab"
    )
    assert "or log in as root@pam with the declared password" in failed.reason
    assert lab.writes() == []  # never enabled, so no node started logging errors


def test_a_rejected_create_leaves_nothing_behind(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    lab.server.faults.set(fail_path="*/storage", fail_method="POST", fail_message="boom")
    results = reconcile(lab, [spec("fresh"), spec("other")])
    assert [r.status for r in results.results] == [Status.FAILED, Status.FAILED]
    assert results.for_storage("fresh").reason == "HTTP 500: boom"  # type: ignore[union-attr]
    assert lab.entry("fresh") is None


# ---- dry run -------------------------------------------------------------------------------


def test_a_dry_run_sends_no_request_at_all(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("drifted", "namespace x"), section("stray")), reach=ALL_REACH)
    desired = [spec("drifted"), spec("fresh"), spec("moved", server="pbs2.lab")]
    client = lab.client()
    current = plan(desired, client.storages(), PlanOptions(), reach_ok(desired))
    logged = len(lab.requests())
    results = apply(current, client, desired, PlanOptions(), dry_run=True)
    assert len(lab.requests()) == logged
    assert results.dry_run
    assert not results.ok
    assert results.writes == 0
    statuses = {r.storage: (r.status, r.action.kind if r.action else None) for r in results.results}
    assert statuses == {
        "drifted": (Status.PLANNED, Kind.UPDATE),
        "fresh": (Status.PLANNED, Kind.CREATE),
        "moved": (Status.PLANNED, Kind.CREATE),
        "stray": (Status.UNCHANGED, Kind.NOTE),
    }
    assert results.summary() == "dry run, nothing written: 3 planned, 0 refused, 1 unchanged"
    assert "drifted: planned (update)" in results.describe()


def test_a_dry_run_never_touches_the_client() -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"dry run used client.{name}")

    desired = [spec("fresh")]
    current = plan(desired, [], PlanOptions(), reach_ok(desired))
    results = apply(current, Untouchable(), desired, PlanOptions(), dry_run=True)  # type: ignore[arg-type]
    assert results.for_storage("fresh").status == Status.PLANNED  # type: ignore[union-attr]


def test_compliant_declared_storages_are_reported_unchanged(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("fine")), reach=ALL_REACH)
    results = reconcile(lab, [spec("fine")])
    assert results.results[0].line() == "fine: unchanged - matches its declaration"
    assert results.ok


# ---- other writers in the middle of one storage's steps -------------------------------------


def test_a_conflict_with_a_writer_who_already_fixed_it_ends_unchanged(start_lab: StartLab) -> None:
    lab, desired = three_drifted(start_lab)
    desired = desired[:1]
    client = lab.client()
    current = plan(desired, client.storages(), DEFAULTS, reach_ok(desired))
    lab.server.store.write(
        lambda s: update_storage(s, {"storage": "a-one", "prune-backups": "keep-daily=9"})
    )
    results = apply(current, client, desired, DEFAULTS, reach_ok(desired), sleep=lambda _s: None)
    result = results.results[0]
    assert (result.status, result.writes, result.retries) == (Status.UNCHANGED, 0, 1)
    assert result.line() == (
        "a-one: unchanged - another writer already made it match (1 retry after digest conflicts)"
    )


def test_a_create_someone_else_enabled_meanwhile_counts_as_created(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)

    def enable_behind_our_back(_what: str) -> None:
        lab.server.store.write(lambda s: update_storage(s, {"storage": "fresh", "disable": "0"}))

    lab.nodes["pve3"].hook = enable_behind_our_back
    results = reconcile(lab, [spec("fresh")])
    result = results.results[0]
    assert (result.verb, result.writes) == ("created", 1)
    assert_compliant(lab, spec("fresh"))


def test_an_entry_deleted_right_after_our_create_is_reported(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)

    def delete_behind_our_back(_what: str) -> None:
        lab.server.store.write(lambda s: (delete_storage(s, {"storage": "fresh"}), None))

    lab.nodes["pve3"].hook = delete_behind_our_back
    result = reconcile(lab, [spec("fresh")]).results[0]
    assert result.status == Status.FAILED
    assert result.reason == "the entry vanished right after it was created"


def test_a_failed_undo_of_an_enable_says_the_entry_is_enabled(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    lab.nodes["pve2"].broken_activation = True

    def break_puts(what: str) -> None:
        if what == "activate":
            lab.server.faults.set(fail_path="*/storage/fresh", fail_method="PUT", fail_message="no")

    lab.nodes["pve2"].hook = break_puts
    result = reconcile(lab, [spec("fresh")]).results[0]
    assert result.status == Status.FAILED
    assert "disabling it again failed too (HTTP 500: no) - it is ENABLED now" in result.reason
    assert "disable" not in (lab.entry("fresh") or {})


def test_the_undo_of_an_enable_retries_on_a_digest_conflict(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    lab.nodes["pve2"].broken_activation = True

    def arm_writer(what: str) -> None:
        if what == "activate":
            lab.server.faults.set(concurrent_writer=True)

    lab.nodes["pve2"].hook = arm_writer
    result = reconcile(lab, [spec("fresh")]).results[0]
    assert result.status == Status.FAILED
    assert "disabled again" in result.reason
    assert result.retries == 1
    assert (lab.entry("fresh") or {})["disable"] == 1


# ---- odd inputs --------------------------------------------------------------------------------


def test_a_datastore_a_node_does_not_list_keeps_the_entry_disabled(start_lab: StartLab) -> None:
    reach = {**ALL_REACH, "pve2": {"pbs1.lab": ["store2"]}}
    lab = start_lab(cfg(), reach=reach)
    result = reconcile(lab, [spec("fresh")]).results[0]
    assert result.status == Status.FAILED
    assert "node pve2 (datastore 'store1' is not listed for root@pam" in result.reason


def test_a_node_that_does_not_answer_counts_as_not_reaching(start_lab: StartLab) -> None:
    lab = start_lab(
        cfg(section("sleeping", "disable", "nodes pve1")),
        passwords={"sleeping": PBS_PASSWORD},
        reach=ALL_REACH,
    )
    result = reconcile(lab, [spec("sleeping", nodes=["pve1", "pve9"])]).results[0]
    assert result.status == Status.FAILED
    assert result.unreachable_nodes == ("pve9",)
    assert "hostname lookup 'pve9' failed" in result.reason


def test_an_action_for_a_storage_missing_from_the_declaration_fails(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("drifted", "namespace x")), reach=ALL_REACH)
    client = lab.client()
    current = plan([spec("drifted")], client.storages(), DEFAULTS)
    results = apply(current, client, [], DEFAULTS)
    assert results.results[0].reason == "'drifted' is not in the declaration given to apply"
    assert results.for_storage("elsewhere") is None
    assert str(results).endswith("0 refused, 1 failed, 0 unchanged")


def test_a_dry_run_reports_refusals_as_refused() -> None:
    desired = [spec("fresh")]
    results = apply(plan(desired, [], DEFAULTS), None, desired, DEFAULTS, dry_run=True)  # type: ignore[arg-type]
    assert results.results[0].status == Status.REFUSED
    assert "no connectivity evidence" in results.results[0].reason


def test_a_recreate_whose_create_fails_says_the_entry_is_missing(start_lab: StartLab) -> None:
    lab = start_lab(cfg(section("moved", server="old.lab")), reach=ALL_REACH)
    lab.server.faults.set(fail_path="*/storage", fail_method="POST", fail_message="boom")
    result = reconcile(lab, [spec("moved")], EVERYTHING).results[0]
    assert result.status == Status.FAILED
    assert result.reason.startswith(
        "deleted the old entry, but creating it again failed (HTTP 500: boom); it is MISSING now"
    )
    assert result.writes == 1
    lab.server.faults.clear()
    assert reconcile(lab, [spec("moved")], EVERYTHING).results[0].verb == "created"
    assert_compliant(lab, spec("moved"))


# ---- Hypothesis over HTTP: apply(plan(...)) against the lab ends with no drift ----------------


@pytest.fixture
def open_lab(start_lab: StartLab) -> Lab:
    """One lab for all examples of a Hypothesis test: every node reaches every PBS."""
    stores = {"pbs1.lab": ["store1", "store2"], "pbs2.lab": ["store1", "store2"]}
    return start_lab("", reach=dict.fromkeys(("pve1", "pve2", "pve3"), stores))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_apply_of_any_plan_converges_against_the_lab(
    open_lab: Lab,
    scenario: tuple[list[StorageSpec], str, dict[str, Reachability], PlanOptions],
) -> None:
    desired, storage_cfg, reach, options = scenario
    lab = open_lab
    state = StorageState.from_text(storage_cfg)
    secrets = {sid: StorageSecrets(password=PBS_PASSWORD) for sid in state.config.ids()}
    lab.server.store.write(lambda _s: (StorageState.from_text(storage_cfg, secrets), None))

    client = lab.client()
    before = plan(desired, client.storages(), options, reach)
    results = apply(before, client, desired, options, reach, sleep=lambda _s: None)
    assert all(r.status != Status.FAILED for r in results.results), results.describe()
    check_converged(desired, before, lab.live(), options, reach)
    # and a second run of the same writes nothing (rotation aside, which is always a write)
    if not options.rotate_secrets:
        writes = len(lab.writes())
        again = plan(desired, client.storages(), options, reach)
        assert apply(again, client, desired, options, reach).writes == 0
        assert len(lab.writes()) == writes


# ---- a wrong password left behind, racing writers, Ctrl-C --------------------------------------


def test_a_corrected_password_is_sent_with_the_enable_of_the_entry_a_wrong_one_left_disabled(
    start_lab: StartLab,
) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    first = reconcile(lab, [spec("fresh", password="not-the-password")]).results[0]
    assert first.status == Status.FAILED
    assert first.reason.startswith("created disabled and left disabled: nodes pve1 (")
    assert "401 Unauthorized" in first.reason
    assert (lab.entry("fresh") or {})["disable"] == 1
    assert lab.password("fresh") == "not-the-password"

    # the declaration is fixed; the next run sends the corrected password with the enable
    fixed = spec("fresh")
    result = reconcile(lab, [fixed]).results[0]
    assert (result.status, result.verb) == (Status.CHANGED, "enabled")
    assert result.steps == ("PUT /storage/fresh disable=0 password=***",)
    assert lab.password("fresh") == PBS_PASSWORD
    assert_compliant(lab, fixed)
    # the nodes logged in with the declared password before the enable, and confirmed it after
    for node in ("pve1", "pve2", "pve3"):
        assert lab.nodes[node].calls.count("pbs1.lab") >= 3
    log = lab.log_path.read_text(encoding="utf-8")
    assert PBS_PASSWORD not in log
    assert "not-the-password" not in log


def test_two_writers_creating_the_same_entries_at_once_both_succeed(start_lab: StartLab) -> None:
    lab = start_lab(cfg(), reach=ALL_REACH)
    desired = [spec("fresh"), spec("fresh-off", enabled=False, datastore="store2")]
    reach = reach_ok(desired)
    clients = [lab.client(), lab.client()]
    plans = [plan(desired, c.storages(), DEFAULTS, reach) for c in clients]  # both: 2 creates
    start = threading.Barrier(2)
    results: dict[int, Results] = {}

    def writer(i: int) -> None:
        start.wait()
        results[i] = apply(plans[i], clients[i], desired, DEFAULTS, reach, sleep=lambda _s: 0)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(results) == {0, 1}

    posts = [r for r in lab.writes() if r["method"] == "POST"]
    assert sorted(r["status"] for r in posts) == [200, 200, 500, 500]  # each create lost once
    for i in (0, 1):
        assert results[i].ok, results[i].describe()
    lost = [r for i in (0, 1) for r in results[i].results if r.reason.startswith("another writer")]
    assert sorted(r.storage for r in lost) == ["fresh", "fresh-off"]
    for r in lost:
        assert r.reason == "another writer created it at the same time"
        assert any("storage ID '" + r.storage + "' already defined" in s for s in r.steps)
    assert_compliant(lab, *desired)


def test_ctrl_c_during_a_create_reports_it_created_disabled_and_the_rest_not_started(
    start_lab: StartLab,
) -> None:
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("SIGINT is handled in the main thread only")
    lab = start_lab(cfg(section("z-drifted", "namespace x")), reach=ALL_REACH)
    main = threading.main_thread().ident
    assert main is not None

    def ctrl_c(what: str) -> None:  # while the nodes are asked, before the enable
        if what == "scan":
            signal.pthread_kill(main, signal.SIGINT)

    lab.nodes["pve2"].hook = ctrl_c
    desired = [spec("fresh"), spec("z-drifted")]
    with pytest.raises(Interrupted) as stopped:
        reconcile(lab, desired)
    results = stopped.value.results
    fresh = results.for_storage("fresh")
    assert fresh is not None
    assert fresh.status == Status.INTERRUPTED
    assert fresh.line() == (
        "fresh: interrupted - created disabled, not enabled yet (inert: no node uses it)"
    )
    assert fresh.steps[0].startswith("POST /storage ")
    rest = results.for_storage("z-drifted")
    assert rest is not None
    assert (rest.status, rest.reason) == (Status.NOT_STARTED, "nothing sent")
    assert results.summary() == (
        "1 created, 0 updated, 0 enabled, 0 disabled, 0 re-created, 0 deleted, 0 refused, "
        "0 failed, 0 unchanged, 1 interrupted, 1 not started"
    )
    assert "fresh: interrupted - created disabled" in str(stopped.value)
    assert (lab.entry("fresh") or {})["disable"] == 1
    assert not results.ok

    lab.nodes["pve2"].hook = None  # a re-run continues where it stopped
    again = reconcile(lab, desired)
    verbs = {r.storage: r.verb for r in again.results}
    assert verbs == {"fresh": "enabled", "z-drifted": "updated"}
    assert_compliant(lab, *desired)


def test_a_create_left_disabled_counts_as_created_and_failed(start_lab: StartLab) -> None:
    reach = {"pve1": ALL_REACH["pve1"], "pve2": ALL_REACH["pve2"], "pve3": {}}
    lab = start_lab(cfg(), reach=reach)
    results = reconcile(lab, [spec("fresh")])
    assert results.results[0].status == Status.FAILED
    assert results.results[0].left == "created"
    assert results.summary() == (
        "1 created, 0 updated, 0 enabled, 0 disabled, 0 re-created, 0 deleted, 0 refused, "
        "1 failed, 0 unchanged"
    )
    assert results.counts()["created"] == 1
