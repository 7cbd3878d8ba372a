"""The benchmark's core at N = 10: the report's shape, and targets computed from real counts.

No timing assertions: wall-clock numbers belong to `make bench` and its machine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.run import Settings, classify, run_benchmark, targets
from benchmarks.scenarios import NODES, fleet

TARGETS = ("ratio_n1000", "dead_servers", "api_reads", "probes", "writes", "memory")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    settings = Settings(sizes=(10,), repeats=1, warmup=False)
    produced = run_benchmark(settings, out, say=lambda _: None)
    written: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(produced))
    return written


def test_report_shape(report: dict[str, Any]) -> None:
    assert set(report) >= {"machine", "results", "targets"}
    assert report["machine"]["nproc"] >= 1
    assert report["machine"]["python"]
    assert set(report["targets"]) == set(TARGETS)
    for target in report["targets"].values():
        assert {"value", "limit", "pass"} <= set(target)
        assert isinstance(target["pass"], bool)
    (result,) = report["results"]
    assert result["n"] == 10
    assert result["servers"] == 3
    assert result["nodes"] == len(NODES)
    kinds = {(r["kind"], r["workers"]) for r in result["runs"]}
    assert kinds == {
        ("compliance", 0),
        ("compliance", 2),
        ("floor", 0),
        ("floor", 2),
        ("healthy", 0),
        ("floor-healthy", 0),
        ("remediate", 0),
        ("remediate", 2),
    }
    assert all(r["wall"] > 0 and not r["timed_out"] for r in result["runs"])
    # The floor ran as many cases as the compliance run had.
    cases = {r["cases"] for r in result["runs"] if r["kind"] in ("compliance", "floor")}
    assert cases == {result["cases"]}
    assert result["cases"] > 10


def test_counts_come_from_the_lab(report: dict[str, Any]) -> None:
    (result,) = report["results"]
    size = fleet(10, 1.0)
    reads = result["pve_reads_per_run"]
    assert reads["storage_list"] == 1
    assert reads["node_views"] == len(NODES)
    assert report["targets"]["api_reads"]["value"] == reads["storage_list"] + reads["node_views"]
    # The backup health reads: every server tried in one session (the dead ones too), the
    # guests once, one PVE backup list per (server, datastore): 10 storages on 3 servers x 3
    # datastores. PVE's request log shows the same PVE calls the run counted.
    backup = result["backup_reads_per_run"]
    assert backup["calls"]["pbs session"] == size.servers
    assert backup["calls"]["pve cluster/resources"] == reads["cluster_resources"] == 1
    assert backup["calls"]["pve storage content"] == reads["backup_lists"] == 9
    assert backup["pve"] == 1 + 9
    # The most of each in one run: the run with every server up - per server one login,
    # datastore list and usage read, and the privileges on each of its 3 datastores.
    assert backup["calls"]["login"] == size.servers
    assert backup["calls"]["pbs admin/datastore"] == size.servers
    assert backup["calls"]["pbs status/datastore-usage"] == size.servers
    assert backup["calls"]["pbs access/permissions"] == 9
    assert backup["pbs"] == 3 * size.servers + 9
    calls = result["probes"]["calls"]
    assert calls["dns"]["total"] == size.servers  # one resolve per server, not per storage
    assert calls["tcp"]["total"] == size.servers
    assert calls["tls"]["total"] == size.servers - 1  # the refusing server gets no handshake
    lab = result["probes"]["lab"]
    assert lab["dns_names_asked"] == size.servers
    assert lab["tcp_probe_connections_per_healthy_server"] == [1]
    assert report["targets"]["probes"]["value"] == 1
    serial = result["remediation"]["serial"]
    assert serial["missing"] == len(size.missing)
    assert serial["expected_writes"] == 10 + len(size.missing)
    assert serial["writes"] == serial["expected_writes"]  # counted in the PVE request log
    assert serial["remediated"] == serial["declared"]


def test_targets_follow_the_numbers(report: dict[str, Any]) -> None:
    """Recomputing with one count changed flips the target: nothing is hard-coded."""
    results = json.loads(json.dumps(report["results"]))
    settings = Settings(sizes=(10,), repeats=1)
    assert targets(results, settings) == report["targets"]
    results[0]["pve_reads_per_run"]["storage_list"] = 2
    results[0]["pve_reads_per_run"]["backup_lists"] += 1  # one the run did not count
    results[0]["probes"]["calls"]["dns"]["max_per_server"] = 3
    results[0]["remediation"]["serial"]["writes"] += 1
    results[0]["peak_rss_mb"]["compliance_serial"] = 500.0
    changed = targets(results, settings)
    assert not changed["api_reads"]["pass"]
    assert changed["probes"]["value"] == 3
    assert not changed["probes"]["pass"]
    assert changed["writes"]["value"] == 1
    assert not changed["writes"]["pass"]
    assert not changed["memory"]["pass"]


def test_the_backup_reads_are_told_apart_in_pves_request_log() -> None:
    def get(path: str, **params: str) -> dict[str, Any]:
        return {"method": "GET", "path": f"/api2/json{path}", "params": params, "status": 200}

    counts = classify(
        [
            get("/cluster/resources"),  # the backup reads: guests, nodes, storages at once
            get("/cluster/resources", type="vm"),  # the job reads' guests
            get("/nodes/pve1/storage/media/content", content="backup"),
            get("/nodes/pve2/storage"),
            get("/cluster/backup"),
            get("/pools", poolid="web"),
            get("/nodes/pve2/tasks", typefilter="vzdump"),
            get("/cluster/status"),
            get("/nodes/pve2/storage/media/status"),  # nobody's read: counted as other
        ]
    )

    assert counts == {
        "cluster_resources": 1,
        "backup_lists": 1,
        "node_views": 1,
        "guest_list": 1,
        "job_list": 1,
        "pool_reads": 1,
        "task_lists": 1,
        "cluster_status": 1,
        "other_reads": 1,
        "total": 9,
    }


def test_only_the_planted_faults_fail(report: dict[str, Any]) -> None:
    """The fleet is a working cluster (guests, a job that ran, fresh verified backups), so the
    floor is compared with a compliance run, not with pytest summarising failures: one failing
    case per storage on a dead server (its port or tls case) and one per missing entry (drift),
    nothing else - no backup, node or job case."""
    result = report["results"][0]
    size = fleet(10, 1.0)
    assert result["outcomes"]["failed"] == size.storages_on_dead() + len(size.missing) == 7


def test_a_kind_is_judged_on_its_fastest_round_with_the_median_beside_it() -> None:
    from benchmarks.run import _fastest, _value

    assert _fastest([24.7, 20.1, 29.9]) == 20.1
    assert _value({"value": 1.3, "limit": 1.35, "pass": True, "median": 1.46}) == (
        "1.3 (median 1.46)"
    )
    assert _value({"value": 4, "limit": 4, "pass": True}) == "4"


def test_stolen_cpu_is_the_kernels_steal_counter_in_seconds() -> None:
    import os
    from pathlib import Path

    from benchmarks.run import steal_seconds

    before = steal_seconds()
    ticks = int(Path("/proc/stat").read_text(encoding="utf-8").split()[8])  # cpu ... steal
    after = steal_seconds()
    assert 0.0 <= before <= ticks / os.sysconf("SC_CLK_TCK") <= after
