"""The state of one compliance run inside pytest, and the `pbs` fixture's value.

Kept in `config.stash` (never on `config`) by `pbs_compliance.plugin`, read by the fixture and
by other plugins only through `pbs_compliance.api`. Evidence is gathered in the background from
`pytest_sessionstart`; each case waits only for the part it judges: a connectivity case for the
probes, any other for everything (see `RunState.servers`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from pbs_compliance.config import ComplianceConfig, ConfigError, StorageSpec, load_config
from pbs_compliance.evidence import Evidence, ServerEvidence, gather_evidence, server_key
from pbs_compliance.evidence import unexpected as _unexpected
from pbs_compliance.settings import Overrides, RunSettings, SettingError, config_path, resolve
from pbs_compliance.verdicts import Verdict
from pbs_compliance.waiver_plugin import settle

REMEDIATED = "remediated"  # the outcome of a case a plugin fixed during the run


@dataclass
class RunState:
    """Plugin state of one pytest run."""

    active: bool = False
    files: bool = False  # the run writes a report file (`report.run.writes_files`)
    settings: RunSettings | None = None
    evidence: Evidence | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    outcomes: dict[tuple[str, str, str], str] = field(default_factory=dict)
    remediation: str = "off"
    pending: Future[Evidence] | None = None
    nodes_pending: Future[list[str]] | None = None  # PVE's node list, ahead of the rest
    probes_pending: Future[dict[str, ServerEvidence]] | None = None  # the probes, ahead too
    # Each `pytest_pbs_gather` implementation's own future, by plugin name, once started.
    extra_pending: Future[dict[str, Future[Any]]] | None = None
    current: pytest.Item | None = None  # the case being run (`Compliance.node`)

    def require(self) -> tuple[RunSettings, Evidence]:
        """Settings and evidence, once both are there (see `ensure`)."""
        assert self.settings is not None, "pbs-compliance: config not loaded"
        self.wait()
        assert self.evidence is not None, "pbs-compliance: evidence not gathered"
        return self.settings, self.evidence

    def wait(self) -> None:
        """The evidence gathered in the background since the session started."""
        if self.evidence is None and self.pending is not None:
            self.evidence = self.pending.result()
            self.pending = None

    def known_nodes(self) -> list[str]:
        """PVE's node list, without waiting for the rest of the evidence: a run of connectivity
        cases alone never waits for it, yet its summary judges waivers by node. Empty when PVE
        was not read."""
        if self.evidence is not None:
            return list(self.evidence.live.nodes)
        if self.nodes_pending is not None:
            with suppress(Exception):  # a gathering that broke: its cases said so
                return list(self.nodes_pending.result())
        return []

    def servers(self) -> dict[str, ServerEvidence]:
        """Every server's probes, by `server_key`, as soon as the last probe ended.

        At a thousand storages PVE and the PBS servers answer for seconds after the probes are
        done; the connectivity cases, a third of the run, judge the probes alone and run
        meanwhile. The evidence's own `servers` are this same dict (see `gather`)."""
        if self.evidence is None and self.probes_pending is not None:
            return self.probes_pending.result()
        self.wait()
        assert self.evidence is not None, "pbs-compliance: evidence not gathered"
        return self.evidence.servers


STATE = pytest.StashKey[RunState]()
VERDICT = pytest.StashKey[Verdict]()
OUTCOME = pytest.StashKey[str]()  # on a report: its compliance outcome when not pytest's own


@dataclass(frozen=True)
class Compliance:
    """What a check needs, in one fixture (`pbs`): the run's settings and evidence, its
    reference time, the case being run (`node`), and `check()` to record a verdict and pass,
    skip or fail that case.

    One session-scoped fixture instead of five function-scoped ones keeps pytest's per-case
    overhead small, which matters at a thousand storages. `evidence` is everything gathered
    (asking for it waits until it is all there); `server()` waits for the probes alone."""

    settings: RunSettings
    now: dt.datetime
    state: RunState = field(repr=False)

    def __repr__(self) -> str:
        # Short: `--debug` logs every fixture's value, and the evidence of a thousand storages
        # would make that log huge (and it is nobody's business there).
        return f"Compliance({self.settings.config.source})"

    @property
    def node(self) -> pytest.Item:
        """The case being run (its stash, user properties and config)."""
        if self.state.current is None:
            raise RuntimeError("pbs: no case is running (a check's verdict belongs to a case)")
        return self.state.current

    @property
    def config(self) -> ComplianceConfig:
        return self.settings.config

    @property
    def evidence(self) -> Evidence:
        """Probes, PVE (`.live`) and what plugins gathered (`.extra`), once all of it is in."""
        return self.state.require()[1]

    def server(self, spec: StorageSpec) -> ServerEvidence | None:
        """The probe results of this storage's server (None when it was not probed: disabled)."""
        return self.state.servers().get(server_key(spec.server, spec.port))

    def check(self, verdict: Verdict) -> None:
        """Record the verdict (report properties, HTML, matrix) and pass, skip or fail with it."""
        __tracebackhide__ = True
        node = self.node
        node.stash[VERDICT] = verdict
        spec = spec_named(self.settings.config, verdict.storage)
        props = {
            "storage": verdict.storage,
            "server": spec.server if spec else "",
            "check": verdict.check,
            "node": verdict.node or "",
        }
        # On the item, so every report of the case (and JUnit, and xdist) carries them.
        node.user_properties.extend((k, v) for k, v in props.items() if v)
        # A waived failure ends here as an xfail; an expired waiver adds a line to the failure.
        verdict = settle(node, verdict, self.settings.config, self.now)
        node.stash[VERDICT] = verdict
        if verdict.status == "skip":
            pytest.skip(verdict.message)
        if verdict.status == "fail":
            pytest.fail(verdict.message, pytrace=False)


def spec_named(config: ComplianceConfig | None, name: str) -> StorageSpec | None:
    if config is None:
        return None
    try:
        return config.storage(name)
    except KeyError:  # "(all)": a cluster-wide case
        return None


# -- loading and gathering ----------------------------------------------------------------------


def overrides(config: pytest.Config) -> Overrides:
    return Overrides(
        config=config.getoption("pbs_config"),
        pve_url=config.getoption("pve_url"),
        dns_servers=tuple(config.getoption("dns_server") or ()),
        probe_timeout=config.getoption("probe_timeout"),
        cert_expiry_days=config.getoption("cert_expiry_days"),
    )


def load_settings(config: pytest.Config) -> RunSettings:
    """The declaration and the command line, resolved (raises ConfigError / SettingError)."""
    given = overrides(config)
    path = config_path(given)
    if not path.is_absolute():
        path = Path(config.invocation_params.dir) / path
    return resolve(load_config(path), given)


def gather(
    config: pytest.Config,
    settings: RunSettings,
    nodes: Future[list[str]] | None = None,
    started: Future[dict[str, Future[Any]]] | None = None,
    probes: Future[dict[str, ServerEvidence]] | None = None,
) -> Evidence:
    """Everything a run judges: probes and PVE (`gather_evidence`) and, at the same time, what
    plugins add through `pytest_pbs_gather` (each implementation's failure is its own keys'
    `error`): a dead PBS then costs one timeout for all of them together.

    `nodes` gets PVE's node list as soon as it is read; whatever happens later, the evidence's
    `live.nodes` is that same list (the node cases were made from it). `started` gets each
    plugin's own future, so a plugin that parametrises from its data waits for that alone.
    `probes` gets every server's probes when the last one ended; the evidence's `servers` are
    that same dict (the connectivity cases were judged on it)."""

    def announce(found: list[str]) -> None:
        if nodes is not None and not nodes.done():
            nodes.set_result(found)

    def probed(servers: dict[str, ServerEvidence]) -> None:
        if probes is not None and not probes.done():
            probes.set_result(servers)

    try:
        with ThreadPoolExecutor(thread_name_prefix="pbs-gather-extra") as pool:
            pending = start_extra(config, settings, pool)
            if started is not None and not started.done():
                started.set_result(dict(pending))
            evidence = gather_evidence(settings, announce, probed)
            evidence.extra.update(collect_extra(pending))
    except BaseException as exc:  # pragma: no cover - gathering is a boundary; never wait forever
        for waiting in (nodes, started, probes):
            if waiting is not None and not waiting.done():
                waiting.set_exception(exc)
        raise
    if nodes is not None:
        announce(list(evidence.live.nodes))
        evidence.live.nodes = nodes.result()
    if probes is not None:
        probed(evidence.servers)
        evidence.servers = probes.result()
    return evidence


def start_gathering(config: pytest.Config, state: RunState) -> None:
    """Gather in the background while pytest collects: probes wait on the network, collection
    on the CPU. Collection waits only for the node list (`nodes`), a connectivity case for the
    probes (`RunState.servers`), every other case for the rest."""
    assert state.settings is not None
    state.nodes_pending = Future()
    state.extra_pending = Future()
    state.probes_pending = Future()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbs-evidence")
    state.pending = pool.submit(
        gather,
        config,
        state.settings,
        state.nodes_pending,
        state.extra_pending,
        state.probes_pending,
    )
    pool.shutdown(wait=False)  # the task runs on; whoever needs the evidence waits for it


def nodes(config: pytest.Config) -> list[str]:
    """PVE's node list for parametrising node cases, without waiting for probes and scans."""
    state = config.stash[STATE]
    if state.evidence is None and state.nodes_pending is not None:
        return state.nodes_pending.result()
    return list(ensure(config).require()[1].live.nodes)


def extra_of(config: pytest.Config, plugin_name: str) -> Mapping[str, Any]:
    """What one plugin's `pytest_pbs_gather` returned (or its `{name: {"error": ...}}`), without
    waiting for the probes or the other plugins: a plugin that parametrises its cases from its
    own data lets a probe timeout overlap with collection, as the node cases do."""
    state = config.stash[STATE]
    if state.evidence is None and state.extra_pending is not None:
        future = state.extra_pending.result().get(plugin_name)
        if future is not None:
            return collect_extra([(plugin_name, future)])
    return ensure(config).require()[1].extra


def gather_extra(config: pytest.Config, settings: RunSettings) -> dict[str, Any]:
    """What every `pytest_pbs_gather` implementation adds, all of them at once."""
    with ThreadPoolExecutor(thread_name_prefix="pbs-gather-extra") as pool:
        return collect_extra(start_extra(config, settings, pool))


def start_extra(
    config: pytest.Config, settings: RunSettings, pool: ThreadPoolExecutor
) -> list[tuple[str, Future[Any]]]:
    """Each `pytest_pbs_gather` implementation started in `pool`: (plugin name, its future)."""
    return [
        (impl.plugin_name, pool.submit(impl.function, settings=settings))
        for impl in config.pluginmanager.hook.pytest_pbs_gather.get_hookimpls()
    ]


def collect_extra(pending: list[tuple[str, Future[Any]]]) -> dict[str, Any]:
    """Their results merged in plugin order; a failure is that plugin's `{"error": ...}`."""
    extra: dict[str, Any] = {}
    for name, future in pending:
        try:
            found = cast(Mapping[str, Any] | None, future.result())
        except Exception as exc:  # the boundary: a plugin's failure is its own, never the run's
            extra[name] = {"error": _unexpected(exc)}
            continue
        extra.update(found or {})
    return extra


def ensure_settings(config: pytest.Config) -> RunSettings:
    """The run's settings (loaded here when sessionstart did not)."""
    state = config.stash[STATE]
    if state.settings is None:  # pragma: no cover - sessionstart loads it or stops the run
        try:
            state.settings = load_settings(config)
        except (ConfigError, SettingError) as exc:
            raise pytest.UsageError(f"pbs-compliance: {exc}") from None
    return state.settings


def ensure(config: pytest.Config) -> RunState:
    """The run's state with its evidence (gathered here when no background task did)."""
    state = config.stash[STATE]
    ensure_settings(config)
    assert state.settings is not None
    state.wait()
    if state.evidence is None:
        state.evidence = gather(config, state.settings)
    return state
