"""The `--spec` example documented in the README's lab section starts a lab and shows every key.

`lab-spec-example.yaml` is the README's example, verbatim; this test keeps it valid and complete
as the scenario model grows.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.scenario import (
    GuestScenario,
    JobScenario,
    PbsServerScenario,
    Scenario,
    SnapshotScenario,
    StorageScenario,
    UsageScenario,
)

EXAMPLE = Path(__file__).with_name("lab-spec-example.yaml")


def test_the_documented_example_names_every_key_of_the_spec() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data) == set(Scenario.model_fields)
    assert set(data["pbs_servers"][0]) == set(PbsServerScenario.model_fields)
    assert set().union(*data["storages"]) == set(StorageScenario.model_fields)
    assert set().union(*data["guests"]) == set(GuestScenario.model_fields)
    assert set().union(*data["jobs"]) == set(JobScenario.model_fields)
    assert set().union(*data["snapshots"]) == set(SnapshotScenario.model_fields)
    assert set().union(*data["pbs_servers"][0]["usage"].values()) == set(UsageScenario.model_fields)


def test_the_documented_example_starts_the_lab_it_describes(make_lab: LabFactory) -> None:
    lab = make_lab(Scenario.load(EXAMPLE))
    assert sorted(lab.pbs) == ["pbs1.lab.example", "pbs2.lab.example"]
    cfg = (lab.state_dir / "storage.cfg").read_text(encoding="utf-8")
    assert "pbs: archive\n\tserver pbs1.lab.example\n\tdatastore archive\n" in cfg
    assert "dir: local-images\n\tpath /srv/images\n" in cfg
    declared = yaml.safe_load(lab.config_path.read_text(encoding="utf-8"))["pbs_storages"]
    assert [s["name"] for s in declared] == ["homelab-backup", "archive", "offsite"]
    assert lab.pve is not None
    assert lab.pve.faults.settings.latency == 0.2
    assert sorted(lab.pve.cluster.guests()) == [100, 101]
    assert [j.id for j in lab.pve.cluster.jobs()] == ["nightly"]
    assert lab.backups is not None
    archive = lab.backups.datastore("pbs1.lab.example", "archive")
    assert archive.maintenance == "type=read-only"
    assert [(s.bid, s.ns, s.verification) for s in archive.snapshots] == [
        ("100", "prod/vms", "failed")
    ]
    homelab = lab.backups.datastore("pbs1.lab.example", "homelab")
    assert homelab.used_percent == 62
    assert [s.bid for s in homelab.snapshots] == ["100"]  # the job's run: all but 101
