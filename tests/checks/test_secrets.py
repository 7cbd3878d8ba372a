"""No password, token or ticket reaches the terminal, the reports, a log or a traceback.

The lab is given distinctive canary passwords and token secrets, one storage is declared with a
wrong (canary) password so the error paths run too, and every file the run wrote plus its
stdout and stderr are searched for every canary - and for the hash prefix an earlier version
filed scans by. Every run shows locals and full tracebacks (`-l --tb=long --full-trace`), as
when debugging a CI job, and unexpected exceptions are injected into gathering (a subprocess,
so the injection cannot touch this process).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from checks_harness import ChecksRun, RunChecks

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import TOKEN_ID, Lab, env_name
from pbs_compliance.lab.scenario import builtin

CANARIES = {
    "pbs1_root": "CANARY-pbs1-root-Zq81xT",
    "pbs1_token": "CANARY-pbs1-token-4d9f0c",
    "pbs2_root": "CANARY-pbs2-root-Hh27pL",
    "pbs2_sync": "CANARY-pbs2-sync-Wm55sK",
    "pbs3_root": "CANARY-pbs3-root-Ya03vN",
}
WRONG = "CANARY-declared-wrong-Pw91jR"
DEBUG = ("-l", "--tb=long", "--full-trace")


def canary_scenario() -> dict[str, Any]:
    data: dict[str, Any] = builtin().model_dump()
    pbs1, pbs2, pbs3 = data["pbs_servers"]
    pbs1["users"] = {"root@pam": CANARIES["pbs1_root"]}
    pbs1["tokens"] = {"backup@pbs!pve": CANARIES["pbs1_token"]}
    pbs2["users"] = {"root@pam": CANARIES["pbs2_root"], "sync@pbs": CANARIES["pbs2_sync"]}
    pbs3["users"] = {"root@pam": CANARIES["pbs3_root"]}
    return data


def every_secret(lab: Lab) -> list[str]:
    secrets = [*CANARIES.values(), WRONG, lab.token_secret, lab.readonly_token_secret]
    secrets += [lab.password, *(lab.env[k] for k in lab.env if k.endswith("PASSWORD"))]
    # What an earlier version keyed its scan cache by (and --debug printed): a 64-bit prefix
    # of each password's unsalted SHA-256, enough to test guesses for short passwords offline.
    return secrets + [hashlib.sha256(s.encode()).hexdigest()[:16] for s in secrets]


def leaks(run: ChecksRun, directory: Path, secrets: list[str]) -> list[str]:
    """`where: secret` for every secret found in the output or in a file under `directory`."""
    found = [f"output: {s}" for s in secrets if s in run.output]
    for path in directory.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            found += [f"{path.name}: {s}" for s in secrets if s in text]
    return found


@pytest.fixture
def canary_lab(make_lab: LabFactory) -> Lab:
    return make_lab(canary_scenario())


def test_no_secret_appears_in_any_output_even_when_logins_fail(
    canary_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    log = pytester.path / "run.log"

    run = run_checks(
        canary_lab,
        "-vv",
        *DEBUG,
        f"--debug={pytester.path / 'pytestdebug.log'}",
        "--log-level=DEBUG",
        f"--log-file={log}",
        "--log-file-level=DEBUG",
        extra_env={env_name("offsite"): WRONG},
    )

    # The run really used the secrets: the others log in, the wrong one is refused.
    assert run.failed == {"nodes[offsite:pve1]", "nodes[offsite:pve2]"}
    assert "with the declared password failed" in run.message("nodes[offsite:pve1]")
    assert run.cases["nodes[homelab-backup:pve1]"].outcome == "passed"
    # urllib3 logs each scan/pbs request line at DEBUG: it is there, with the password masked.
    assert "scan/pbs?" in log.read_text(encoding="utf-8")
    assert "password=***" in log.read_text(encoding="utf-8")
    # --debug logs every fixture's value: the compliance fixture is there, and short.
    # Decoded leniently, like `leaks`: pytest's --debug writer is shared by every thread of this
    # in-process run (the lab's too) without a lock, and a race can leave stray bytes in it.
    debug = (pytester.path / "pytestdebug.log").read_bytes().decode("utf-8", "replace")
    assert f"Compliance({canary_lab.config_path})" in debug
    assert leaks(run, pytester.path, every_secret(canary_lab)) == []


def test_no_secret_appears_when_pve_refuses_the_token(
    canary_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    wrong_token = "CANARY-wrong-pve-token-Tk33"

    run = run_checks(
        canary_lab,
        *DEBUG,
        "--log-level=DEBUG",
        f"--log-file={pytester.path / 'run.log'}",
        extra_env={"PBS_LAB_PVE_TOKEN_SECRET": wrong_token},
    )

    assert run.cases["drift[media]"].outcome == "failed"
    message = run.message("drift[media]")
    # Which token was refused, and what to check (PVE itself only says "Authentication failed!").
    # (With --full-trace, pytest shows each failure as a long traceback ending in its message.)
    assert (
        f"cannot read PVE: HTTP 401: Authentication failed! - PVE at {canary_lab.url} refused "
        f"the API token {TOKEN_ID}: check that the id is exactly user@realm!name"
    ) in message, message
    assert "has not expired" in message
    assert "privilege separation" in message
    assert leaks(run, pytester.path, [*every_secret(canary_lab), wrong_token]) == []


# Injected into the run's checks/conftest.py: failures nobody foresaw, deep inside the HTTP
# library (whose frames hold the Authorization header and the scan/pbs query with the password)
# and inside the probes and the gathering itself.
INJECT_SOME = """
import urllib3
import urllib3.connectionpool

import pbs_compliance.evidence as _evidence

_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen


def _injected_urlopen(self, method, url, *args, **kwargs):
    if "/scan/pbs" in url:
        raise urllib3.exceptions.InsecureRequestWarning("injected: a warning raised as an error")
    if url.endswith("/nodes/pve2/storage"):
        raise RuntimeError("injected: reading a node view broke")
    return _urlopen(self, method, url, *args, **kwargs)


urllib3.connectionpool.HTTPConnectionPool.urlopen = _injected_urlopen
_connect = _evidence.connect


def _injected_connect(address, port, timeout):
    if address == "127.0.0.13":
        raise RuntimeError("injected: the TCP probe broke")
    return _connect(address, port, timeout)


_evidence.connect = _injected_connect
"""

INJECT_ALL = """
import urllib3.connectionpool

import pbs_compliance.evidence as _evidence


def _injected_urlopen(self, method, url, *args, **kwargs):
    raise RuntimeError("injected: every PVE request broke")


def _injected_probe(*args, **kwargs):
    raise RuntimeError("injected: gathering broke")


urllib3.connectionpool.HTTPConnectionPool.urlopen = _injected_urlopen
_evidence.probe_server = _injected_probe
"""


def run_injected(
    run_checks: RunChecks, pytester: pytest.Pytester, lab: Lab, injected: str
) -> ChecksRun:
    """A debug run with `injected` appended to checks/conftest.py: it fails, it does not crash."""
    conftest = pytester.path / "checks" / "conftest.py"
    conftest.write_text(conftest.read_text(encoding="utf-8") + injected, encoding="utf-8")
    run = run_checks(lab, *DEBUG, subprocess=True)
    assert run.result.ret == 1, run.output
    for word in ("Traceback", "INTERNALERROR", "pbs_compliance/evidence.py", "urllib3/"):
        assert word not in run.output, word
    return run


def test_unexpected_exceptions_in_gathering_fail_their_cases_and_show_no_secret(
    canary_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    run = run_injected(run_checks, pytester, canary_lab, INJECT_SOME)

    port = run.message("port[media]")
    assert "127.0.0.13:" in port
    assert "unexpected error: RuntimeError: injected: the TCP probe broke" in port
    view = run.message("nodes[archive:pve2]")
    assert (
        f"cannot read the view of pve2: unexpected error talking to PVE at {canary_lab.url}: "
        "RuntimeError: injected: reading a node view broke"
    ) in view
    login = run.message("nodes[homelab-backup:pve1]")
    assert "logging in from pve1 with the declared password failed: a library warning was " in login
    assert "InsecureRequestWarning: injected: a warning raised as an error" in login
    # media's nodes cannot be proven either, but the port case already names media's fault.
    assert run.cases["nodes[media:pve1]"].outcome == "skipped"
    assert run.cases["drift[media]"].outcome == "passed"
    assert leaks(run, pytester.path, every_secret(canary_lab)) == []


def test_a_gathering_that_breaks_everywhere_reports_per_storage_and_shows_no_secret(
    canary_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    run = run_injected(run_checks, pytester, canary_lab, INJECT_ALL)

    for name in ("archive", "homelab-backup", "media", "offsite"):
        assert "unexpected error: RuntimeError: injected: gathering broke" in run.message(
            f"dns[{name}]"
        )
        assert (
            f"cannot read PVE: unexpected error talking to PVE at {canary_lab.url}: "
            "RuntimeError: injected: every PVE request broke"
        ) in run.message(f"drift[{name}]")
    assert leaks(run, pytester.path, every_secret(canary_lab)) == []
