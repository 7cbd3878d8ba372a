"""The `coverage` and `jobs` checks, as pure functions from the declaration and the job evidence
to a `Verdict` (the rule of `verdicts`: each failure says what was seen, what was expected and
the one thing to do about it).

- `coverage` (one case per run): every guest, templates aside, is selected by at least one
  enabled job whose storage is a declared storage declared enabled; guests exempted by
  `coverage.exclude` / `exclude_tags` are left out, and an exemption naming no guest is noted
  as stale. PVE's own `not-backed-up` view counts disabled jobs as coverage; this does not.
- `jobs` (one case per enabled job to a declared storage): the storage is declared enabled, the
  schedule is valid, and on each node where the job has guests its newest run ended `OK`
  (`WARNINGS: n` only with `jobs.allow_warnings`) no longer ago than the job's period (its
  schedule's longest gap) plus `jobs.slack`, or its `jobs.max_age`. A job with no run on any
  node since the tasks were read passes with a note: PVE does not say when a job was created,
  so a new job cannot be told from one whose scheduler never ran it (see `backup_jobs` for how
  a run is matched to its job).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pbs_compliance.backup_jobs import BackupJob, Guest, Selection, TaskRun, job_runs
from pbs_compliance.backup_jobs import schedule_period as _period
from pbs_compliance.backup_jobs import selected as _selected
from pbs_compliance.config import ComplianceConfig
from pbs_compliance.job_reads import JobEvidence, judged_jobs
from pbs_compliance.verdicts import Verdict

__all__ = ["ALL", "Summary", "coverage", "job_ids", "jobs", "summary"]

ALL = "(all)"  # the storage a cluster-wide case reports
JOB_FIX = (
    "fix: read the run's log on that node (Datacenter > Tasks, or `pvesh get "
    "/nodes/NODE/tasks/UPID/log`), remove the cause, then run the job again (Datacenter > "
    "Backup > Run now)"
)


def when(epoch: int | None) -> str:
    """`2026-12-01 02:00:05 UTC` (task times are epoch seconds)."""
    if epoch is None:
        return "-"
    return f"{dt.datetime.fromtimestamp(epoch, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def span(delta: dt.timedelta) -> str:
    """`26h`, `31h 5m`, `8d`, `9d 2h` - an age or an allowance, to the minute."""
    minutes = max(0, int(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 7:
        return f"{days}d" + (f" {hours}h" if hours else "")
    hours += 24 * days
    if hours == 0:
        return f"{mins}m"
    return f"{hours}h" + (f" {mins}m" if mins else "")


def _unreadable(check: str, storage: str, ev: JobEvidence, reads: Iterable[str]) -> Verdict | None:
    if ev.skipped:
        return Verdict(check, storage, "skip", f"{ev.skipped}: backup jobs are not checked")
    failed = [(name, ev.errors[name]) for name in reads if name in ev.errors]
    if not failed:
        return None
    lines = ["cannot read what this check judges from PVE:"]
    lines += [f"  {name}: {error}" for name, error in failed]
    lines.append("fix: make PVE readable for this tool's token (see the reason above), then re-run")
    return Verdict(check, storage, "fail", "\n".join(lines), tuple(failed))


# -- coverage -----------------------------------------------------------------------------------


def _exempt(config: ComplianceConfig, guest: Guest) -> bool:
    return guest.vmid in config.coverage.exclude or bool(
        set(guest.tags) & set(config.coverage.exclude_tags)
    )


def _why_not(config: ComplianceConfig, job: BackupJob) -> str:
    """Why a job that selects a guest does not count as its backup ("" when it does)."""
    if not job.enabled:
        return "disabled"
    if job.storage is None:
        return "no storage set: vzdump.conf's default, which is no declared PBS storage"
    names = {s.name: s for s in config.storages}
    spec = names.get(job.storage)
    if spec is None:
        return f"storage {job.storage} is not declared in {config.source.name}"
    if not spec.enabled:
        return f"storage {job.storage} is declared `enabled: false`"
    return ""


def _reason(reasons: list[tuple[str, str]]) -> str:
    if not reasons:
        return "no backup job selects it"
    if all(why == "disabled" for _, why in reasons):
        return f"only disabled jobs select it: {', '.join(job for job, _ in reasons)}"
    if all(why != "disabled" for _, why in reasons):
        listed = "; ".join(f"{job} ({why})" for job, why in reasons)
        return f"only jobs to storages that are not declared, enabled PBS storages: {listed}"
    return "only jobs that do not count select it: " + "; ".join(
        f"{job} ({why})" for job, why in reasons
    )


def coverage(config: ComplianceConfig, ev: JobEvidence) -> Verdict:
    """One case: every guest (templates and exemptions aside) has a job that counts."""
    unreadable = _unreadable("coverage", ALL, ev, ("jobs", "guests"))
    if unreadable is not None:
        return unreadable
    guests = ev.guest_map()
    selections: dict[str, Selection] = {j.id: _selected(j, guests, ev.pools) for j in ev.jobs}
    reasons: dict[int, list[tuple[str, str]]] = {}
    covered: set[int] = set()
    for job in ev.jobs:
        why = _why_not(config, job)
        for vmid in selections[job.id].vmids():
            if why:
                reasons.setdefault(vmid, []).append((job.id, why))
            else:
                covered.add(vmid)
    judged = [g for g in ev.guests if not g.template and not _exempt(config, g)]
    uncovered = [g for g in judged if g.vmid not in covered]
    notes = _stale_exemptions(config, ev.guests)
    facts: list[tuple[str, str]] = [
        ("guests judged", str(len(judged))),
        ("covered", str(len(judged) - len(uncovered))),
    ]
    facts += [(g.label(), _reason(reasons.get(g.vmid, []))) for g in uncovered]
    facts += [("stale exemption", n) for n in notes]
    if not uncovered:
        message = "\n".join(f"note: {n}" for n in notes)
        return Verdict("coverage", ALL, "pass", message, tuple(facts))
    lines = [
        f"{len(uncovered)} of {len(judged)} guest(s) have no enabled backup job to a declared, "
        "enabled PBS storage:"
    ]
    lines += [f"  {g.label()}: {_reason(reasons.get(g.vmid, []))}" for g in uncovered]
    lines += [f"  ({name} could not be read: {error})" for name, error in _pool_errors(ev)]
    lines.append(
        "fix: add each guest to an enabled job to a declared storage (Datacenter > Backup), "
        f"or exempt it in {config.source.name} with `coverage: {{exclude: [VMID]}}` "
        "(or a tag in `exclude_tags`)"
    )
    lines += [f"note: {n}" for n in notes]
    return Verdict("coverage", ALL, "fail", "\n".join(lines), tuple(facts))


def _pool_errors(ev: JobEvidence) -> list[tuple[str, str]]:
    return [(name, error) for name, error in sorted(ev.errors.items()) if name.startswith("pool ")]


def _stale_exemptions(config: ComplianceConfig, guests: list[Guest]) -> list[str]:
    vmids = {g.vmid for g in guests}
    tags = {t for g in guests for t in g.tags}
    notes = [
        f"coverage.exclude names vmid {v}, which no guest has (stale: remove it)"
        for v in config.coverage.exclude
        if v not in vmids
    ]
    notes += [
        f"coverage.exclude_tags names tag '{t}', which no guest carries (stale: remove it)"
        for t in config.coverage.exclude_tags
        if t not in tags
    ]
    return notes


# -- jobs ---------------------------------------------------------------------------------------


def job_ids(config: ComplianceConfig, ev: JobEvidence) -> list[str]:
    """The `jobs` cases of a run: enabled jobs to a declared storage, in PVE's order."""
    return [job.id for job in judged_jobs(config, ev.jobs)]


def _run_line(run: TaskRun) -> str:
    return f"started {when(run.starttime)}, ended {when(run.endtime)}, {run.upid}"


def jobs(
    config: ComplianceConfig, ev: JobEvidence, job_id: str | None, now: dt.datetime
) -> Verdict:
    """One case per judged job (reported as `job:<id>`): storage, schedule, and the newest run
    on each of its nodes. `job_id` None: the one case of a run that has no job to judge."""
    unreadable = _unreadable("jobs", ALL, ev, ("jobs", "guests"))
    if unreadable is not None:
        return unreadable
    if job_id is None:
        return Verdict(
            "jobs",
            ALL,
            "skip",
            "no enabled backup job writes to a declared storage: no job to judge (see the "
            "coverage case)",
        )
    label = f"job:{job_id}"
    found = {j.id: j for j in ev.jobs}.get(job_id)
    if found is None:
        return Verdict(
            "jobs", label, "fail", f"backup job {job_id} is no longer in PVE's job list (re-run)"
        )
    job = found
    storage = job.storage or "-"
    spec = {s.name: s for s in config.storages}.get(storage)
    if spec is not None and not spec.enabled:
        return Verdict(
            "jobs",
            label,
            "fail",
            f"job {job.describe()} writes to {storage}, which is declared `enabled: false`, so "
            "its runs fail or land on a storage nobody checks\n"
            f"fix: point the job at an enabled storage (Datacenter > Backup > Edit), or enable "
            f"{storage} in {config.source.name}",
            (("job", job.id), ("storage", storage)),
        )
    period, why = _period(job.schedule, now.date())
    allowed = config.jobs.allowed_age(job.id, period)
    broken = not job.schedule or why.startswith("its schedule is not valid")
    if broken or allowed is None:
        return Verdict(
            "jobs",
            label,
            "fail",
            f"job {job.describe()}: {why}, so how often it must run is unknown\n"
            "fix: give it a repeating schedule such as `02:00` or `mon..fri 21:00` (Datacenter > "
            f"Backup > Edit), or set how old its last run may be: `jobs: {{max_age: "
            f"{{{job.id}: 8d}}}}` in {config.source.name}",
            (("job", job.id), ("storage", storage), ("schedule", job.schedule or "-")),
        )
    return _judge_runs(config, ev, job, period, allowed, now)


def _allowance(config: ComplianceConfig, job: BackupJob, period: dt.timedelta | None) -> str:
    if job.id in config.jobs.max_age or period is None:
        return f"jobs.max_age of {job.id}"
    return f"period {span(period)} + slack {span(config.jobs.slack)}"


def _judge_runs(
    config: ComplianceConfig,
    ev: JobEvidence,
    job: BackupJob,
    period: dt.timedelta | None,
    allowed: dt.timedelta,
    now: dt.datetime,
) -> Verdict:
    label = f"job:{job.id}"
    per_node = job_runs(job, ev.selections(), ev.tasks)
    facts: list[tuple[str, str]] = [
        ("job", job.id),
        ("storage", job.storage or "-"),
        ("schedule", job.schedule or "-"),
        ("allowed age", f"{span(allowed)} ({_allowance(config, job, period)})"),
    ]
    if not per_node:
        note = f"job {job.id} selects no guest on any node (see the coverage case)"
        return Verdict("jobs", label, "pass", f"note: {note}", tuple(facts))
    problems: list[tuple[str, str]] = []
    never: list[str] = []
    for node, (runs, twins) in per_node.items():
        error = ev.errors.get(f"tasks {node}")
        if error is not None:
            problems.append((node, f"cannot read its tasks: {error}"))
            facts.append((node, "tasks unreadable"))
            continue
        if not runs:
            never.append(node)
            facts.append((node, f"no run since {when(ev.since)}"))
            continue
        newest = runs[0]
        facts.append((node, f"{newest.status}, {_run_line(newest)}"))
        problem = _judge_run(config, newest, allowed, now, _allowance(config, job, period))
        if problem:
            if twins:
                problem += (
                    f" (PVE's task list does not name the job: this may be the run of "
                    f"{', '.join(twins)}, which has the same guests on {node})"
                )
            problems.append((node, problem))
    if len(never) == len(per_node):
        note = (
            f"note: job {job.id} has no run on any of its nodes ({', '.join(never)}) since "
            f"{when(ev.since)}. PVE does not say when a job was created: a new job passes until "
            f"its first run; one older than {span(allowed)} that never ran means PVE's "
            "scheduler does not run it (check `systemctl status pvescheduler` on the nodes)"
        )
        return Verdict("jobs", label, "pass", note, tuple(facts))
    problems += [
        (node, f"no run since {when(ev.since)}, while it ran on other nodes") for node in never
    ]
    if not problems:
        return Verdict("jobs", label, "pass", facts=tuple(facts))
    lines = [f"job {job.describe()}: {len(problems)} of {len(per_node)} node(s) failed:"]
    lines += [f"  {node}: {text}" for node, text in problems]
    lines.append(JOB_FIX)
    failed = problems[0][0] if len(problems) == 1 else None
    return Verdict("jobs", label, "fail", "\n".join(lines), tuple(facts), node=failed)


def _judge_run(
    config: ComplianceConfig,
    run: TaskRun,
    allowed: dt.timedelta,
    now: dt.datetime,
    allowance: str,
) -> str:
    """What is wrong with a node's newest run ("" when nothing)."""
    accepted = run.ok or (run.warnings and config.jobs.allow_warnings)
    if not accepted:
        hint = " (set `jobs: {allow_warnings: true}` to accept warnings)" if run.warnings else ""
        return f"the last run ended '{run.status}'{hint} - {_run_line(run)}"
    assert run.endtime is not None  # only finished runs are matched
    age = now - dt.datetime.fromtimestamp(run.endtime, dt.UTC)
    if age > allowed:
        return (
            f"the last run ended {span(age)} ago, more than the {span(allowed)} allowed "
            f"({allowance}) - '{run.status}', {_run_line(run)}"
        )
    return ""


# -- a short summary (`pbs status`) -------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Coverage and job runs in a few lines: what `pbs status` shows below its table."""

    coverage: Verdict
    jobs: tuple[Verdict, ...]

    @property
    def ok(self) -> bool:
        return self.coverage.status != "fail" and all(v.status != "fail" for v in self.jobs)

    def lines(self) -> list[str]:
        cover, facts = self.coverage, dict(self.coverage.facts)
        if cover.status == "skip":
            out = [f"backup coverage: not checked ({cover.message})"]
        elif "guests judged" not in facts:  # PVE could not be read
            reasons = "; ".join(f"{name}: {error}" for name, error in cover.facts)
            out = [f"backup coverage: not judged - {reasons}"]
        elif cover.status == "pass":
            out = [f"backup coverage: all {facts['guests judged']} guest(s) covered"]
        else:
            judged, covered = int(facts["guests judged"]), int(facts["covered"])
            out = [f"backup coverage: {judged - covered} of {judged} guest(s) not covered"]
            out += [f"  {line.strip()}" for line in cover.message.splitlines() if line[:2] == "  "]
        judged_jobs = [v for v in self.jobs if v.storage.startswith("job:")]
        failed = [v for v in judged_jobs if v.status == "fail"]
        if judged_jobs:
            out.append(
                f"backup jobs: {len(judged_jobs) - len(failed)} of {len(judged_jobs)} ran as "
                "scheduled"
            )
        out += [f"  {v.message.splitlines()[0]}" for v in failed]
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "coverage": {"status": self.coverage.status, "message": self.coverage.message},
            "jobs": {
                v.storage.removeprefix("job:"): {"status": v.status, "message": v.message}
                for v in self.jobs
                if v.storage.startswith("job:")
            },
        }


def summary(config: ComplianceConfig, ev: JobEvidence, now: dt.datetime) -> Summary:
    """Both checks judged as the compliance run judges them, for `pbs status`."""
    ids = job_ids(config, ev) if not ev.skipped and "jobs" not in ev.errors else []
    return Summary(coverage(config, ev), tuple(jobs(config, ev, i, now) for i in ids))
