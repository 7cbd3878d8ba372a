"""The `coverage` and `jobs` verdicts whole: check, storage, node, status, facts, message."""

from __future__ import annotations

import datetime as dt

import pytest
from jobs_data import HOUR, NOW, T0, config, evidence, run

from pbs_compliance.backup_jobs import BackupJob, Guest
from pbs_compliance.config.model import CoverageSettings, JobSettings
from pbs_compliance.job_verdicts import coverage, job_ids, jobs, span, summary, when
from pbs_compliance.verdicts import Verdict

FIX = (
    "fix: add each guest to an enabled job to a declared storage (Datacenter > Backup), or "
    "exempt it in pbs-storage.yaml with `coverage: {exclude: [VMID]}` (or a tag in "
    "`exclude_tags`)"
)
ALL_HOMELAB = BackupJob("nightly", schedule="02:00", storage="homelab", all=True)
JOB_FIX = (
    "fix: read the run's log on that node (Datacenter > Tasks, or `pvesh get "
    "/nodes/NODE/tasks/UPID/log`), remove the cause, then run the job again (Datacenter > "
    "Backup > Run now)"
)


def test_when_and_span() -> None:
    assert when(T0) == "2026-12-01 12:00:00 UTC"
    assert when(None) == "-"
    assert span(dt.timedelta(hours=26)) == "26h"
    assert span(dt.timedelta(hours=31, minutes=5, seconds=59)) == "31h 5m"
    assert span(dt.timedelta(days=2, hours=3)) == "51h"
    assert span(dt.timedelta(days=8)) == "8d"
    assert span(dt.timedelta(days=9, hours=2)) == "9d 2h"
    assert span(dt.timedelta(minutes=5)) == "5m"
    assert span(dt.timedelta(seconds=-5)) == "0m"


# -- coverage ---------------------------------------------------------------------------------


def test_every_guest_covered_passes_and_templates_are_not_judged() -> None:
    verdict = coverage(
        config(), evidence([BackupJob("j", storage="homelab", vmids=(100, 101, 200))])
    )

    assert verdict == Verdict(
        "coverage", "(all)", "pass", "", (("guests judged", "3"), ("covered", "3"))
    )


def test_each_uncovered_guest_with_its_reason() -> None:
    jobs_ = [
        BackupJob("off", enabled=False, storage="homelab", vmids=(101,)),
        BackupJob("local", storage="local", vmids=(200,)),
        BackupJob("old", enabled=False, storage="homelab", vmids=(200,)),
    ]

    verdict = coverage(config(), evidence(jobs_))

    assert verdict.check == "coverage"
    assert verdict.storage == "(all)"
    assert verdict.status == "fail"
    assert verdict.node is None
    assert verdict.message == "\n".join(
        [
            "3 of 3 guest(s) have no enabled backup job to a declared, enabled PBS storage:",
            "  vmid 100 'web' (qemu) on pve1: no backup job selects it",
            "  vmid 101 'dns' (lxc) on pve1: only disabled jobs select it: off",
            "  vmid 200 'db' (qemu) on pve2: only jobs that do not count select it: local "
            "(storage local is not declared in pbs-storage.yaml); old (disabled)",
            FIX,
        ]
    )
    assert verdict.facts == (
        ("guests judged", "3"),
        ("covered", "0"),
        ("vmid 100 'web' (qemu) on pve1", "no backup job selects it"),
        ("vmid 101 'dns' (lxc) on pve1", "only disabled jobs select it: off"),
        ("vmid 200 'db' (qemu) on pve2",
         "only jobs that do not count select it: local (storage local is not declared in "
         "pbs-storage.yaml); old (disabled)"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        (
            BackupJob("x", storage="offsite", vmids=(100,)),
            "only jobs to storages that are not declared, enabled PBS storages: x (storage "
            "offsite is declared `enabled: false`)",
        ),
        (
            BackupJob("y", vmids=(100,)),
            "only jobs to storages that are not declared, enabled PBS storages: y (no storage "
            "set: vzdump.conf's default, which is no declared PBS storage)",
        ),
        (
            BackupJob("z", storage="homelab", vmids=(100,), node="pve2"),
            "no backup job selects it",  # the job's node restriction leaves it out
        ),
    ],
)
def test_jobs_that_do_not_count(job: BackupJob, reason: str) -> None:
    others = BackupJob("rest", storage="homelab", vmids=(101, 200))

    verdict = coverage(config(), evidence([job, others]))

    assert verdict.status == "fail"
    assert verdict.message.splitlines()[:2] == [
        "1 of 3 guest(s) have no enabled backup job to a declared, enabled PBS storage:",
        f"  vmid 100 'web' (qemu) on pve1: {reason}",
    ]
    assert verdict.facts[:3] == (
        ("guests judged", "3"),
        ("covered", "2"),
        ("vmid 100 'web' (qemu) on pve1", reason),
    )


def test_a_pool_selected_guest_is_covered() -> None:
    jobs_ = [
        BackupJob("pool", storage="homelab", pool="prod"),
        BackupJob("one", storage="homelab", vmids=(101,)),
    ]

    assert coverage(config(), evidence(jobs_)).status == "pass"


def test_exemptions_by_vmid_and_tag_and_stale_ones() -> None:
    settings = CoverageSettings(exclude=(101, 555), exclude_tags=("web", "gone"))
    ev = evidence([BackupJob("j", storage="homelab", vmids=(200,))])

    verdict = coverage(config(coverage=settings), ev)

    assert verdict == Verdict(
        "coverage",
        "(all)",
        "pass",
        "note: coverage.exclude names vmid 555, which no guest has (stale: remove it)\n"
        "note: coverage.exclude_tags names tag 'gone', which no guest carries (stale: remove it)",
        (
            ("guests judged", "1"),
            ("covered", "1"),
            ("stale exemption", "coverage.exclude names vmid 555, which no guest has (stale: "
                                "remove it)"),
            ("stale exemption", "coverage.exclude_tags names tag 'gone', which no guest carries "
                                "(stale: remove it)"),
        ),
    )  # fmt: skip


def test_stale_exemptions_also_on_a_failure_and_pool_read_errors() -> None:
    settings = CoverageSettings(exclude=(777,))
    ev = evidence([BackupJob("p", storage="homelab", pool="prod")], pools={}, errors={
        "pool prod": "HTTP 500: boom"})  # fmt: skip

    verdict = coverage(config(coverage=settings), ev)

    assert verdict.message.splitlines()[-3:] == [
        "  (pool prod could not be read: HTTP 500: boom)",
        FIX,
        "note: coverage.exclude names vmid 777, which no guest has (stale: remove it)",
    ]


def test_an_unreadable_pve_fails_naming_the_read() -> None:
    ev = evidence([], errors={"jobs": "HTTP 403: Permission check failed (/, Sys.Audit) - the "
                              "PVE token or user needs Sys.Audit on /"})  # fmt: skip

    verdict = coverage(config(), ev)

    assert verdict == Verdict(
        "coverage",
        "(all)",
        "fail",
        "cannot read what this check judges from PVE:\n"
        "  jobs: HTTP 403: Permission check failed (/, Sys.Audit) - the PVE token or user needs "
        "Sys.Audit on /\n"
        "fix: make PVE readable for this tool's token (see the reason above), then re-run",
        (("jobs", ev.errors["jobs"]),),
    )


def test_no_credentials_skips() -> None:
    ev = evidence([], skipped="no PVE credentials configured")

    assert coverage(config(), ev) == Verdict(
        "coverage", "(all)", "skip", "no PVE credentials configured: backup jobs are not checked"
    )
    assert jobs(config(), ev, "x", NOW).status == "skip"


# -- jobs ---------------------------------------------------------------------------------------


def test_cases_are_enabled_jobs_to_declared_storages() -> None:
    ev = evidence(
        [
            BackupJob("a", storage="homelab", all=True),
            BackupJob("b", enabled=False, storage="homelab", all=True),
            BackupJob("c", storage="local", all=True),
            BackupJob("d", storage="offsite", all=True),
            BackupJob("e", all=True),
        ]
    )

    assert job_ids(config(), ev) == ["a", "d"]


def fresh_runs(ended_ago: int = 6 * HOUR) -> dict[str, list[object]]:
    return {"pve1": [run("pve1", ended_ago=ended_ago)], "pve2": [run("pve2", ended_ago=HOUR)]}


def test_a_job_whose_newest_runs_ended_ok_in_time_passes() -> None:
    verdict = jobs(config(), evidence([ALL_HOMELAB], fresh_runs()), "nightly", NOW)  # type: ignore[arg-type]

    assert verdict == Verdict(
        "jobs",
        "job:nightly",
        "pass",
        "",
        (
            ("job", "nightly"),
            ("storage", "homelab"),
            ("schedule", "02:00"),
            ("allowed age", "26h (period 24h + slack 2h)"),
            ("pve1", f"OK, {line(run('pve1', ended_ago=6 * HOUR))}"),
            ("pve2", f"OK, {line(run('pve2', ended_ago=HOUR))}"),
        ),
    )


def line(task: object) -> str:
    return f"started {when(task.starttime)}, ended {when(task.endtime)}, {task.upid}"  # type: ignore[attr-defined]


def test_exactly_period_plus_slack_passes_a_second_more_fails() -> None:
    at_limit = jobs(config(), evidence([ALL_HOMELAB], fresh_runs(26 * HOUR)), "nightly", NOW)  # type: ignore[arg-type]
    late = run("pve1", ended_ago=26 * HOUR + 60)

    too_old = jobs(
        config(),
        evidence([ALL_HOMELAB], {**fresh_runs(), "pve1": [late]}),
        "nightly",
        NOW,  # type: ignore[dict-item]
    )

    assert at_limit.status == "pass"
    assert too_old.status == "fail"
    assert too_old.node == "pve1"
    assert too_old.message == "\n".join(
        [
            "job nightly (storage homelab, schedule 02:00): 1 of 2 node(s) failed:",
            "  pve1: the last run ended 26h 1m ago, more than the 26h allowed (period 24h + "
            f"slack 2h) - 'OK', {line(late)}",
            JOB_FIX,
        ]
    )


def test_a_failed_run_quotes_its_status_node_times_and_upid() -> None:
    bad = run("pve2", "job errors", ended_ago=HOUR)
    ev = evidence(
        [ALL_HOMELAB], {"pve1": [run("pve1")], "pve2": [bad, run("pve2", ended_ago=30 * HOUR)]}
    )

    verdict = jobs(config(), ev, "nightly", NOW)

    assert (verdict.check, verdict.storage, verdict.status, verdict.node) == (
        "jobs", "job:nightly", "fail", "pve2")  # fmt: skip
    assert verdict.message == "\n".join(
        [
            "job nightly (storage homelab, schedule 02:00): 1 of 2 node(s) failed:",
            f"  pve2: the last run ended 'job errors' - {line(bad)}",
            JOB_FIX,
        ]
    )
    assert "started 2026-12-01 10:50:00 UTC, ended 2026-12-01 11:00:00 UTC" in line(bad)


def test_warnings_fail_unless_allowed() -> None:
    warned = run("pve1", "WARNINGS: 1")
    ev = evidence([ALL_HOMELAB], {"pve1": [warned], "pve2": [run("pve2")]})

    strict = jobs(config(), ev, "nightly", NOW)
    lenient = jobs(config(jobs=JobSettings(allow_warnings=True)), ev, "nightly", NOW)

    assert strict.message.splitlines()[1] == (
        "  pve1: the last run ended 'WARNINGS: 1' (set `jobs: {allow_warnings: true}` to accept "
        f"warnings) - {line(warned)}"
    )
    assert lenient.status == "pass"


def test_two_failing_nodes_name_no_single_node() -> None:
    ev = evidence([ALL_HOMELAB], {"pve1": [run("pve1", "job errors")], "pve2": [run("pve2", "x")]})

    verdict = jobs(config(), ev, "nightly", NOW)

    assert verdict.node is None
    assert verdict.message.splitlines()[0] == (
        "job nightly (storage homelab, schedule 02:00): 2 of 2 node(s) failed:"
    )


def test_max_age_replaces_period_plus_slack() -> None:
    settings = JobSettings(max_age={"nightly": dt.timedelta(hours=10)})
    old = run("pve1", ended_ago=11 * HOUR)

    verdict = jobs(
        config(jobs=settings),
        evidence([ALL_HOMELAB], {"pve1": [old], "pve2": [run("pve2")]}),
        "nightly",
        NOW,
    )

    assert verdict.facts[3] == ("allowed age", "10h (jobs.max_age of nightly)")
    assert verdict.message.splitlines()[1] == (
        "  pve1: the last run ended 11h ago, more than the 10h allowed (jobs.max_age of "
        f"nightly) - 'OK', {line(old)}"
    )


def test_a_weekday_job_gets_its_longest_gap() -> None:
    job = BackupJob("weekdays", schedule="mon..fri 02:00", storage="homelab", all=True)
    ev = evidence([job], {"pve1": [run("pve1", ended_ago=73 * HOUR)], "pve2": [run("pve2")]})

    verdict = jobs(config(), ev, "weekdays", NOW)

    assert verdict.status == "pass"
    assert verdict.facts[3] == ("allowed age", "74h (period 72h + slack 2h)")


def test_a_job_that_never_ran_passes_with_a_note() -> None:
    verdict = jobs(config(), evidence([ALL_HOMELAB], {}), "nightly", NOW)

    assert verdict.status == "pass"
    assert verdict.message == (
        "note: job nightly has no run on any of its nodes (pve1, pve2) since 2026-11-29 "
        "08:00:00 UTC. PVE does not say when a job was created: a new job passes until its "
        "first run; one older than 26h that never ran means PVE's scheduler does not run it "
        "(check `systemctl status pvescheduler` on the nodes)"
    )
    assert verdict.facts[4:] == (
        ("pve1", "no run since 2026-11-29 08:00:00 UTC"),
        ("pve2", "no run since 2026-11-29 08:00:00 UTC"),
    )


def test_a_node_without_a_run_fails_when_others_ran() -> None:
    verdict = jobs(config(), evidence([ALL_HOMELAB], {"pve1": [run("pve1")]}), "nightly", NOW)

    assert verdict.node == "pve2"
    assert verdict.message.splitlines()[1] == (
        "  pve2: no run since 2026-11-29 08:00:00 UTC, while it ran on other nodes"
    )


def test_unreadable_tasks_of_a_node_fail_it() -> None:
    ev = evidence(
        [ALL_HOMELAB], {"pve1": [run("pve1")]}, errors={"tasks pve2": "HTTP 595: no route"}
    )

    verdict = jobs(config(), ev, "nightly", NOW)

    assert verdict.node == "pve2"
    assert verdict.message.splitlines()[1] == "  pve2: cannot read its tasks: HTTP 595: no route"


def test_a_run_that_may_be_another_jobs_says_so() -> None:
    one = BackupJob("one", schedule="02:00", storage="homelab", vmids=(101,))
    twin = BackupJob("twin", schedule="03:00", storage="offsite", vmids=(101,))
    bad = run("pve1", "job errors", ident="101")

    verdict = jobs(config(), evidence([one, twin], {"pve1": [bad]}), "one", NOW)

    assert verdict.message.splitlines()[1] == (
        f"  pve1: the last run ended 'job errors' - {line(bad)} (PVE's task list does not name "
        "the job: this may be the run of twin, which has the same guests on pve1)"
    )


def test_a_job_to_a_storage_declared_disabled_fails() -> None:
    job = BackupJob("off", schedule="02:00", storage="offsite", all=True)

    verdict = jobs(config(), evidence([job], fresh_runs()), "off", NOW)  # type: ignore[arg-type]

    assert verdict == Verdict(
        "jobs",
        "job:off",
        "fail",
        "job off (storage offsite, schedule 02:00) writes to offsite, which is declared "
        "`enabled: false`, so its runs fail or land on a storage nobody checks\n"
        "fix: point the job at an enabled storage (Datacenter > Backup > Edit), or enable "
        "offsite in pbs-storage.yaml",
        (("job", "off"), ("storage", "offsite")),
    )


@pytest.mark.parametrize(
    ("schedule", "why"),
    [
        ("25:00", "its schedule is not valid: invalid calendar event '25:00' - hour '25' out of "
                  "range"),
        (None, "it has no schedule"),
        ("2027-03-01 02:00", "its schedule '2027-03-01 02:00' does not repeat (one date)"),
    ],
)  # fmt: skip
def test_a_schedule_that_gives_no_period_fails(schedule: str | None, why: str) -> None:
    job = BackupJob("odd", schedule=schedule, storage="homelab", all=True)

    verdict = jobs(config(), evidence([job], fresh_runs()), "odd", NOW)  # type: ignore[arg-type]

    assert verdict == Verdict(
        "jobs",
        "job:odd",
        "fail",
        f"job {job.describe()}: {why}, so how often it must run is unknown\n"
        "fix: give it a repeating schedule such as `02:00` or `mon..fri 21:00` (Datacenter > "
        "Backup > Edit), or set how old its last run may be: `jobs: {max_age: {odd: 8d}}` in "
        "pbs-storage.yaml",
        (("job", "odd"), ("storage", "homelab"), ("schedule", schedule or "-")),
    )


def test_a_one_off_schedule_with_its_own_max_age_is_judged() -> None:
    job = BackupJob("once", schedule="2027-03-01 02:00", storage="homelab", all=True)
    settings = JobSettings(max_age={"once": dt.timedelta(days=8)})
    invalid = BackupJob("bad", schedule="25:00", storage="homelab", all=True)
    both = JobSettings(max_age={"once": dt.timedelta(days=8), "bad": dt.timedelta(days=8)})

    ok = jobs(config(jobs=settings), evidence([job], fresh_runs()), "once", NOW)  # type: ignore[arg-type]
    still_invalid = jobs(config(jobs=both), evidence([invalid], fresh_runs()), "bad", NOW)  # type: ignore[arg-type]

    assert ok.status == "pass"
    assert ok.facts[3] == ("allowed age", "8d (jobs.max_age of once)")
    assert still_invalid.status == "fail"


def test_a_job_that_selects_no_guest_passes_with_a_note() -> None:
    job = BackupJob("none", schedule="02:00", storage="homelab", vmids=(555,))

    verdict = jobs(config(), evidence([job]), "none", NOW)

    assert verdict.status == "pass"
    assert verdict.message == (
        "note: job none selects no guest on any node (see the coverage case)"
    )


def test_a_job_gone_from_pve_fails() -> None:
    verdict = jobs(config(), evidence([]), "ghost", NOW)

    assert verdict == Verdict(
        "jobs", "job:ghost", "fail", "backup job ghost is no longer in PVE's job list (re-run)"
    )


def test_a_run_without_a_job_to_judge_has_one_skipped_case() -> None:
    assert jobs(config(), evidence([]), None, NOW) == Verdict(
        "jobs",
        "(all)",
        "skip",
        "no enabled backup job writes to a declared storage: no job to judge (see the coverage "
        "case)",
    )


def test_guests_unreadable_fails_the_job_case() -> None:
    ev = evidence([ALL_HOMELAB], errors={"guests": "HTTP 500: x"})

    verdict = jobs(config(), ev, "nightly", NOW)

    assert (verdict.status, verdict.storage, verdict.facts) == (
        "fail", "(all)", (("guests", "HTTP 500: x"),))  # fmt: skip


def test_unrelated_guest_list_shapes() -> None:
    guests = [Guest(100, "pve1"), Guest(101, "pve1")]
    job = BackupJob("j", schedule="02:00", storage="homelab", all=True)
    single = run("pve1", ident="100")

    verdict = jobs(config(), evidence([job], {"pve1": [single]}, guests=guests), "j", NOW)

    assert verdict.status == "pass"  # a single-guest task is not this two-guest job's run
    assert verdict.message.startswith("note: job j has no run on any of its nodes (pve1)")


# -- the summary `pbs status` shows ---------------------------------------------------------------


def test_summary_of_a_covered_cluster_with_jobs_that_ran() -> None:
    ev = evidence([ALL_HOMELAB], fresh_runs())  # type: ignore[arg-type]

    result = summary(config(), ev, NOW)

    assert result.ok is True
    assert result.lines() == [
        "backup coverage: all 3 guest(s) covered",
        "backup jobs: 1 of 1 ran as scheduled",
    ]
    assert result.to_dict() == {
        "ok": True,
        "coverage": {"status": "pass", "message": ""},
        "jobs": {"nightly": {"status": "pass", "message": ""}},
    }


def test_summary_names_uncovered_guests_and_failed_jobs() -> None:
    jobs_ = [
        BackupJob("nightly", schedule="02:00", storage="homelab", vmids=(100, 101)),
        BackupJob("off", enabled=False, storage="homelab", vmids=(200,)),
    ]
    ev = evidence(jobs_, {"pve1": [run("pve1", "job errors")]})

    result = summary(config(), ev, NOW)

    assert result.ok is False
    assert result.lines() == [
        "backup coverage: 1 of 3 guest(s) not covered",
        "  vmid 200 'db' (qemu) on pve2: only disabled jobs select it: off",
        "backup jobs: 0 of 1 ran as scheduled",
        "  job nightly (storage homelab, schedule 02:00): 1 of 1 node(s) failed:",
    ]
    assert result.to_dict()["jobs"] == {
        "nightly": {"status": "fail", "message": jobs(config(), ev, "nightly", NOW).message}
    }


def test_summary_without_pve() -> None:
    skipped = summary(config(), evidence([], skipped="no PVE credentials configured"), NOW)
    refused = summary(config(), evidence([], errors={"jobs": "HTTP 403: no"}), NOW)

    assert skipped.lines() == [
        "backup coverage: not checked (no PVE credentials configured: backup jobs are not checked)"
    ]
    assert skipped.ok is True
    assert refused.lines() == ["backup coverage: not judged - jobs: HTTP 403: no"]
    assert refused.ok is False
    assert refused.to_dict()["jobs"] == {}
