"""The check registry: every check the suite knows, in one place.

A check is a name (its marker, its test function `test_<name>`, its column in the matrix and the
tables), a marker description (what `pytest --markers` says and what a passing case proves), a
scope - what one case is about:

- `storage`: one case per declared storage (the test takes the `pbs_storage` fixture);
- `node`: one case per (storage, PVE node it applies to) (`pbs_node_target`);
- `cluster`: one case per run (neither fixture); its cell is the matrix's footer line;
- `job`: one case per enabled backup job to a declared storage (`pbs_job`, from
  `job_plugin`); its row in the matrix is `job:<id>`;

and the evidence it judges (`probes`, `pve`, or the key a plugin's `pytest_pbs_gather` returns).

The built-in checks are declared below; a check in its own module under `checks/` registers
itself with the `check` decorator (see README, "Writing your own check"), which also puts the
marker on the test function, so `-m NAME` selects it with no other file touched. Markers,
`tables`, the terminal matrix, the HTML summary and the test harness all read this registry.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pytest

Scope = Literal["storage", "node", "cluster", "job"]
SCOPES: tuple[Scope, ...] = ("storage", "node", "cluster", "job")
FIXTURE = {"storage": "pbs_storage", "node": "pbs_node_target", "job": "pbs_job"}
# What a cluster-wide case reports as its storage (a storage name PVE cannot hold: no parentheses).
CLUSTER = "(all)"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")

F = TypeVar("F", bound=Callable[..., Any])


class CheckError(ValueError):
    """A check is declared in a way the suite cannot run; the message says how to fix it."""


@dataclass(frozen=True)
class Check:
    """One check: see the module doc for what each field drives."""

    name: str
    description: str
    scope: Scope = "storage"
    needs: tuple[str, ...] = ()
    column: str = ""  # heading in the matrix (default: the name)
    title: str = ""  # heading in `pbs validate`'s table (default: the name, capitalised)
    origin: str = field(default="", compare=False)  # where it was declared, for error messages

    def __post_init__(self) -> None:
        where = f" ({self.origin})" if self.origin else ""
        if not _NAME.match(self.name):
            raise CheckError(
                f"check name {self.name!r}{where} must be lower-case letters, digits and _, "
                "starting with a letter: it is a pytest marker and part of a function name"
            )
        if self.scope not in SCOPES:
            raise CheckError(
                f"check {self.name!r}{where}: scope {self.scope!r} is not one of "
                f"{', '.join(SCOPES)}"
            )
        if not self.description.strip():
            raise CheckError(
                f"check {self.name!r}{where} needs a description: it is the marker's help text"
            )

    @property
    def heading(self) -> str:
        return self.column or self.name

    @property
    def table_title(self) -> str:
        return self.title or self.name.capitalize()

    @property
    def marker_line(self) -> str:
        """The `markers` ini line pytest registers for it."""
        return f"{self.name}: {self.description}"

    @property
    def function(self) -> str:
        """The test function that runs it: the marker and the function carry the same name."""
        return f"test_{self.name}"


BUILTIN: tuple[Check, ...] = (
    Check(
        "dns",
        "the PBS server name resolves through the configured nameservers",
        "storage",
        ("probes",),
        title="DNS",
    ),
    Check("port", "a TCP connection to the PBS API port (8007) succeeds", "storage", ("probes",)),
    Check(
        "tls",
        "the TLS handshake completes and the certificate is valid and not about to expire",
        "storage",
        ("probes",),
        title="TLS",
    ),
    Check(
        "fingerprint",
        "the declared fingerprint is the SHA-256 of the served certificate",
        "storage",
        ("probes",),
    ),
    Check("drift", "the PVE storage entry equals its declaration", "storage", ("pve",)),
    Check(
        "nodes",
        "every PVE node the storage applies to sees it enabled and active",
        "node",
        ("pve",),
    ),
    # Backup health (`backup_plugin`): the PBS itself, and the backups PVE lists on it.
    Check(
        "datastore",
        "the datastore exists on the PBS, is in no maintenance mode that stops backups, and the "
        "declared namespace exists",
        "storage",
        ("backups",),
    ),
    Check(
        "capacity",
        "the datastore is at most max_used_percent full and PBS does not predict it full within "
        "min_days_to_full days",
        "storage",
        ("backups",),
    ),
    Check(
        "backups",
        "every existing guest with backups on the storage has a finished one younger than max_age",
        "storage",
        ("pve", "backups"),
    ),
    Check(
        "verified",
        "the newest backup of each guest did not fail verification (with require_verified: was "
        "verified ok within verify_max_age)",
        "storage",
        ("pve", "backups"),
    ),
    Check(
        "unmanaged",
        "PVE has no PBS storage entry the config does not declare",
        "cluster",
        ("pve",),
        column="unmanaged PBS entries",
    ),
    Check(
        "coverage",
        "every guest (templates aside) is in an enabled backup job to a declared, enabled storage",
        "cluster",
        ("jobs",),
        column="backup coverage",
    ),
    Check(
        "jobs",
        "each enabled backup job to a declared storage ended OK on every node with its guests, "
        "within its schedule's period plus slack",
        "job",
        ("jobs",),
    ),
)

_lock = threading.Lock()
_checks: dict[str, Check] = {c.name: c for c in BUILTIN}
_bound: list[pytest.Config] = []  # the pytest runs in progress (pytester nests them)
_declared: dict[int, set[str]] = {}  # per run in progress: the checks declared during it


def checks() -> tuple[Check, ...]:
    """Every registered check: the built-in ones in their order, then added ones as declared."""
    with _lock:
        return tuple(_checks.values())


def get(name: str) -> Check | None:
    with _lock:
        return _checks.get(name)


def names(scope: Scope | None = None, needs: str | None = None) -> tuple[str, ...]:
    """Check names, optionally of one scope and/or judging one kind of evidence."""
    return tuple(
        c.name
        for c in checks()
        if (scope is None or c.scope == scope) and (needs is None or needs in c.needs)
    )


def of_item(item: pytest.Item) -> Check | None:
    """The check a case runs (the marker `check` put on its function); None for other tests."""
    for mark in getattr(item, "own_markers", ()):
        found = get(mark.name)
        if found is not None:
            return found
    return None


def register(entry: Check) -> Check:
    """Add a check (the same declaration again is a no-op; another one of that name is an error).

    The marker is registered with every pytest run in progress, so `--strict-markers` accepts
    it even though the module declaring it is only imported during collection."""
    with _lock:
        known = _checks.get(entry.name)
        if known is not None and known != entry:
            where = f" in {known.origin}" if known.origin else " (built in)"
            raise CheckError(
                f"check {entry.name!r} ({entry.origin or 'here'}) is already declared{where} "
                "with another description, scope or evidence: pick another name"
            )
        if known is None:
            _checks[entry.name] = entry
            for config in _bound:
                _declared.setdefault(id(config), set()).add(entry.name)
        configs = list(_bound)
    for config in configs:
        _add_marker(config, entry)
    return entry


def check(
    name: str,
    description: str | None = None,
    scope: Scope = "storage",
    needs: tuple[str, ...] = (),
    column: str = "",
) -> Callable[[F], F]:
    """Declare (or, for a built-in, look up) a check and mark its test function with it.

        @check("site_prefix", "every datastore name starts with the site prefix")
        def test_site_prefix(pbs_storage: StorageSpec, pbs: Compliance) -> None: ...

    The function must be named `test_<name>` and take the fixture of its scope (`pbs_storage`
    for storage, `pbs_node_target` for node, neither for cluster)."""

    def decorate(function: F) -> F:
        origin = _origin(function)
        known = get(name)
        if description is None:
            if known is None:
                raise CheckError(
                    f"check {name!r} ({origin}) is not built in: give it a description, "
                    f'e.g. @check("{name}", "what a passing case proves")'
                )
            entry = known
        else:
            entry = Check(name, description, scope, tuple(needs), column, origin=origin)
        _validate(entry, function, origin)
        register(entry)
        marked: F = _mark(entry.name)(function)
        return marked

    return decorate


def _mark(name: str) -> pytest.MarkDecorator:
    """`pytest.mark.NAME`, without its `--strict-markers` lookup: a module (a conftest, even)
    may be imported before the run's `pytest_configure` - the registry registers the marker
    with every run itself (`bind`, `register`)."""
    return pytest.MarkDecorator(pytest.Mark(name, (), {}, _ispytest=True), _ispytest=True)


def _origin(function: Callable[..., Any]) -> str:
    """`file:line` of the declaration (its first decorator), from the code object: the source
    is not read (`inspect.getsourcelines` tokenised each check's source at every collection)."""
    code = getattr(function, "__code__", None)
    if code is None:  # pragma: no cover - a callable without code (a C function)
        return getattr(function, "__qualname__", "?")
    return f"{code.co_filename}:{code.co_firstlineno}"


def _validate(entry: Check, function: Callable[..., Any], origin: str) -> None:
    if function.__name__ != entry.function:
        raise CheckError(
            f"{origin}: the test function of check {entry.name!r} is {function.__name__}; "
            f"name it {entry.function} (the marker and the function carry the same name)"
        )
    params = set(inspect.signature(function).parameters)
    wanted = FIXTURE.get(entry.scope)
    others = set(FIXTURE.values()) - {wanted}
    if wanted is not None and wanted not in params:
        raise CheckError(
            f"{origin}: {entry.function} checks one {entry.scope} per case, so it takes the "
            f"`{wanted}` fixture; add the parameter (or declare another scope)"
        )
    if params & others:
        raise CheckError(
            f"{origin}: {entry.function} is a {entry.scope} check but takes "
            f"{', '.join(sorted(params & others))}; declare the matching scope"
        )


# -- the pytest runs in progress ---------------------------------------------------------------


def bind(config: pytest.Config) -> None:
    """Register every check's marker with this run (and with checks declared during it)."""
    with _lock:
        _bound.append(config)
        known = list(_checks.values())
    for entry in known:
        _add_marker(config, entry)


def unbind(config: pytest.Config) -> None:
    """The run ended: the checks its modules declared leave with it (the next run in this
    process - pytester's, a daemon's - imports its own)."""
    with _lock:
        if config in _bound:
            _bound.remove(config)
        for name in _declared.pop(id(config), set()):
            if not any(name in _declared.get(id(c), ()) for c in _bound):
                _checks.pop(name, None)


def _add_marker(config: pytest.Config, entry: Check) -> None:
    if entry.marker_line not in config.getini("markers"):
        config.addinivalue_line("markers", entry.marker_line)
