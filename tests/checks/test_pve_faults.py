"""One PVE-side fault at a time: drift of each kind, node trouble, passwords, unmanaged entries.

Drift is made the way an operator would: through the PVE API of a fresh lab. Each test asserts
the full set of failed cases and the readable per-property diff.
"""

from __future__ import annotations

import pytest
from checks_harness import (
    BUILTIN_IDS,
    RunChecks,
    WriteConfig,
    create_stray_entry,
    html_report_text,
    lab_config,
    pve_client,
    storage,
    storage_ids,
)

from pbs_compliance.lab.runner import Lab, env_name

HOMELAB = storage_ids("homelab-backup")
ARCHIVE = storage_ids("archive")
MEDIA = storage_ids("media")
OFFSITE = storage_ids("offsite", ["pve1", "pve2"])
STORAGES = ("archive", "homelab-backup", "media", "offsite")


def nodes_of(ids: dict[str, str]) -> set[str]:
    return {v for k, v in ids.items() if k.startswith("node:")}


def test_a_declared_storage_missing_from_pve_fails_drift_and_skips_its_nodes(
    lab: Lab, run_checks: RunChecks
) -> None:
    pve_client(lab).delete("media")

    run = run_checks(lab)

    assert run.failed == {MEDIA["drift"]}
    assert run.message(MEDIA["drift"]) == (
        "storage 'media' is declared but does not exist in PVE\n"
        "fix: `pytest checks/ --remediate` or `pbs apply` creates it"
    )
    assert run.skipped == nodes_of(MEDIA) | {MEDIA["backups"], MEDIA["verified"]}
    assert "'media' does not exist in PVE (see the drift case)" in run.message(MEDIA["node:pve1"])
    assert run.message(MEDIA["backups"]) == "PVE has no PBS storage 'media' (see the drift case)"


def test_a_storage_disabled_in_pve_fails_drift_and_skips_its_nodes(
    lab: Lab, run_checks: RunChecks
) -> None:
    pve_client(lab).update("media", {"disable": "1"})

    run = run_checks(lab)

    assert run.failed == {MEDIA["drift"]}
    assert "  disable: (unset) -> 1" in run.message(MEDIA["drift"])
    assert run.skipped == nodes_of(MEDIA) | {MEDIA["backups"], MEDIA["verified"]}
    assert run.message(MEDIA["node:pve2"]) == (
        "'media' is disabled in PVE, so pve2 does not use it (see the drift case)"
    )
    assert run.message(MEDIA["verified"]) == "'media' is disabled in PVE (see the drift case)"


@pytest.mark.parametrize(
    ("name", "change", "line"),
    [
        pytest.param(
            "homelab-backup",
            {"prune-backups": "keep-daily=30"},
            "prune-backups: keep-daily=7,keep-weekly=4,keep-monthly=3 -> keep-daily=30",
            id="prune-backups",
        ),
        pytest.param("archive", {"namespace": "prod"}, "namespace: prod/vms -> prod", id="ns"),
        pytest.param(
            "archive",
            {"max-protected-backups": "3"},
            "max-protected-backups: 10 -> 3",
            id="max-protected-backups",
        ),
        pytest.param("media", {"content": "none"}, "content: backup -> none", id="content"),
    ],
)
def test_a_property_changed_in_pve_fails_only_drift_fixable_in_place(
    lab: Lab, run_checks: RunChecks, name: str, change: dict[str, str], line: str
) -> None:
    pve_client(lab).update(name, change)

    run = run_checks(lab)

    assert run.failed == {f"drift[{name}]"}
    message = run.message(f"drift[{name}]")
    assert message.splitlines() == [
        f"storage '{name}' drifted (declared -> live):",
        f"  {line}",
        "can be fixed in place: `pytest checks/ --remediate` or `pbs apply`",
    ]
    assert f"  {line}" in html_report_text(run.html)


def test_a_narrower_node_list_fails_drift_and_skips_the_node_that_lost_the_storage(
    lab: Lab, run_checks: RunChecks
) -> None:
    pve_client(lab).update("offsite", {"nodes": "pve1"})

    run = run_checks(lab)

    assert run.failed == {OFFSITE["drift"]}
    assert "  nodes: pve1,pve2 -> pve1" in run.message(OFFSITE["drift"])
    assert run.skipped == {OFFSITE["node:pve2"]}
    assert run.message(OFFSITE["node:pve2"]) == (
        "'offsite' is limited to nodes pve1 in PVE, so pve2 does not use it (see the drift case)"
    )


@pytest.mark.parametrize(
    ("change", "line"),
    [
        pytest.param({"port": "1"}, "port: {port} -> 1", id="port"),
        pytest.param({"username": "sync@pbs"}, "username: root@pam -> sync@pbs", id="username"),
    ],
)
def test_a_changed_port_or_username_fails_drift_and_the_nodes_point_at_it(
    lab: Lab, run_checks: RunChecks, change: dict[str, str], line: str
) -> None:
    pve_client(lab).update("media", change)

    run = run_checks(lab)

    assert run.failed == {MEDIA["drift"]}
    port = lab.pbs["pbs3.lab.example"].port
    assert f"  {line.format(port=port)}" in run.message(MEDIA["drift"])
    assert "can be fixed in place" in run.message(MEDIA["drift"])
    # The nodes use PVE's value and really fail: said, and pointed at the drift case; so does
    # PVE's list of media's backups.
    assert run.skipped == nodes_of(MEDIA) | {MEDIA["backups"], MEDIA["verified"]}
    assert f"({line.partition(':')[0]} differ)" in run.message(MEDIA["backups"])
    node = run.message(MEDIA["node:pve3"])
    assert "enabled but NOT active" in node
    key = line.partition(":")[0]
    assert f"PVE's entry differs from the declaration in {key}" in node
    assert "(see the drift case)" in node


def test_an_entry_pointing_at_another_server_needs_re_creation(
    lab: Lab, run_checks: RunChecks
) -> None:
    client = pve_client(lab)
    pbs1 = lab.pbs["pbs1.lab.example"]
    client.delete("media")
    client.create(
        {
            "storage": "media",
            "type": "pbs",
            "server": "pbs1.lab.example",
            "datastore": "homelab",
            "port": str(pbs1.port),
            "fingerprint": pbs1.fingerprint,
            "content": "backup",
        },
        password=lab.pbs_password("pbs1.lab.example", "root@pam"),
    )

    run = run_checks(lab)

    assert run.failed == {MEDIA["drift"]}
    message = run.message(MEDIA["drift"])
    assert "  server: pbs3.lab.example -> pbs1.lab.example" in message
    assert "  datastore: media -> homelab" in message
    assert "needs re-creation: PVE cannot change server, datastore in place" in message
    assert "can be fixed in place" not in message


WRONG_PASSWORD = "CANARY-wrong-declared-pw-7Q2x"


def test_a_declared_password_that_pbs_refuses_fails_the_node_logins_only(
    lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(lab, extra_env={env_name("homelab-backup"): WRONG_PASSWORD})

    assert run.failed == nodes_of(HOMELAB)
    message = run.message(HOMELAB["node:pve1"])
    assert "logging in from pve1 with the declared password failed" in message
    assert "authentication" in message.lower() or "401" in message
    assert WRONG_PASSWORD not in run.output
    assert run.cases[HOMELAB["drift"]].outcome == "passed"


def test_a_password_pve_stores_wrongly_makes_the_nodes_report_the_storage_inactive(
    lab: Lab, run_checks: RunChecks
) -> None:
    pve_client(lab).update("homelab-backup", {}, password=WRONG_PASSWORD)

    run = run_checks(lab)

    assert run.failed == nodes_of(HOMELAB)
    message = run.message(HOMELAB["node:pve2"])
    assert "pve2 reports 'homelab-backup' enabled but NOT active" in message
    assert "logging in" not in message  # the declared password itself still works
    assert WRONG_PASSWORD not in run.output


def test_an_undeclared_pbs_entry_fails_the_unmanaged_case_and_no_other_type_is_listed(
    lab: Lab, run_checks: RunChecks
) -> None:
    create_stray_entry(lab)

    run = run_checks(lab)

    assert run.failed == {"unmanaged"}
    message = run.message("unmanaged")
    assert message.splitlines() == [
        f"1 PBS storage(s) in PVE are not declared in {lab.config_path}:",
        "  stray-offsite: server pbs2.lab.example, datastore offsite",
        "fix: declare them (to manage them), or remove them with `--remediate --prune-unmanaged`",
    ]
    assert "local-images" not in run.output
    assert set(run.cases) == BUILTIN_IDS


def test_a_storage_declared_disabled_skips_connectivity_and_nodes_but_checks_drift(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    lab.pbs["pbs3.lab.example"].set_mode("down")  # would fail port if it were checked
    config = lab_config(lab)
    storage(config, "media")["enabled"] = False

    run = run_checks(lab, config=write_config(config))

    # PVE's backup job still writes to the storage declared disabled: that job's case fails.
    assert run.failed == {MEDIA["drift"], "jobs[job:backup-media]"}
    assert run.message("jobs[job:backup-media]").startswith(
        "job backup-media (storage media, schedule 05:00) writes to media, which is declared "
        "`enabled: false`"
    )
    assert "  disable: 1 -> (unset)" in run.message(MEDIA["drift"])
    skipped = {MEDIA[c] for c in ("dns", "port", "tls", "fingerprint")} | nodes_of(MEDIA)
    health = {MEDIA[c] for c in ("datastore", "capacity", "backups", "verified")}
    assert run.skipped == skipped | health
    assert run.message(MEDIA["backups"]) == (
        "'media' is declared `enabled: false`: its backups are not checked"
    )
    assert run.message(MEDIA["port"]) == (
        "'media' is declared `enabled: false`: connectivity is not checked"
    )
    assert run.message(MEDIA["node:pve1"]) == "'media' is declared `enabled: false`"


def test_a_storage_disabled_on_both_sides_passes_drift(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    pve_client(lab).update("media", {"disable": "1"})
    config = lab_config(lab)
    storage(config, "media")["enabled"] = False

    run = run_checks(lab, config=write_config(config))

    assert run.failed == {"jobs[job:backup-media]"}  # a job still writes to it
    assert run.cases[MEDIA["drift"]].outcome == "passed"
    assert MEDIA["dns"] in run.skipped


def test_without_pve_credentials_drift_nodes_and_unmanaged_skip_with_the_reason(
    shared_lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    config = lab_config(shared_lab)
    del config["pve"]["token_id"], config["pve"]["token_secret"]

    run = run_checks(shared_lab, config=write_config(config))

    assert run.result.ret == 0, run.output
    assert run.failed == set()
    # The PBS itself is read with the declared credentials: datastore and capacity still judge.
    from_here = ("dns", "port", "tls", "fingerprint", "datastore", "capacity")
    pve_cases = {c for c in run.cases if not c.startswith(from_here)}
    assert run.skipped == pve_cases
    assert pve_cases == {
        *(f"drift[{n}]" for n in ("archive", "homelab-backup", "media", "offsite")),
        *(f"nodes[{n}]" for n in ("archive", "homelab-backup", "media", "offsite")),
        *(f"backups[{n}]" for n in ("archive", "homelab-backup", "media", "offsite")),
        *(f"verified[{n}]" for n in ("archive", "homelab-backup", "media", "offsite")),
        "unmanaged",
        "coverage",
        "jobs[(all)]",
    }
    for case in pve_cases:
        assert "no PVE credentials configured" in run.message(case), case
    assert all(run.cases[c].outcome == "passed" for c in run.cases if c not in pve_cases)


def test_a_pve_slower_than_its_timeout_fails_the_pve_cases_with_the_reason(
    lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    assert lab.pve is not None
    lab.pve.faults.set(latency=3.0)
    config = lab_config(lab)
    config["pve"]["timeout"] = 0.5

    run = run_checks(lab, config=write_config(config))

    from_here = ("dns", "port", "tls", "fingerprint", "datastore", "capacity")
    connectivity = {c for c in BUILTIN_IDS if c.startswith(from_here)}
    assert run.ids("passed") == connectivity  # the PBS is read directly, PVE's view of it not
    assert run.message("backups[media]") == (
        f"PVE could not be read: PVE at {lab.url} did not answer within 0.5 s (see the drift case)"
    )
    # PVE not read: one node case per storage carries the reason.
    pve_cases = {f"{check}[{n}]" for check in ("drift", "nodes") for n in STORAGES}
    assert run.failed == {*pve_cases, "unmanaged", "coverage", "jobs[(all)]"}
    assert run.message("jobs[(all)]") == (
        "cannot read what this check judges from PVE:\n"
        f"  jobs: PVE at {lab.url} did not answer within 0.5 s\n"
        f"  guests: PVE at {lab.url} did not answer within 0.5 s\n"
        "fix: make PVE readable for this tool's token (see the reason above), then re-run"
    )
    assert run.message("unmanaged") == (
        f"cannot read PVE: PVE at {lab.url} did not answer within 0.5 s"
    )
