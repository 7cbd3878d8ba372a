"""No password, token or ticket reaches the terminal, the reports, a log or a traceback.

The lab is given distinctive canary passwords and token secrets, one storage is declared with a
wrong (canary) password so the error paths run too, and every file the run wrote plus its
stdout and stderr are searched for every canary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from checks_harness import ChecksRun

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab, env_name
from pbs_compliance.lab.scenario import builtin

RunChecks = Callable[..., ChecksRun]

CANARIES = {
    "pbs1_root": "CANARY-pbs1-root-Zq81xT",
    "pbs1_token": "CANARY-pbs1-token-4d9f0c",
    "pbs2_root": "CANARY-pbs2-root-Hh27pL",
    "pbs2_sync": "CANARY-pbs2-sync-Wm55sK",
    "pbs3_root": "CANARY-pbs3-root-Ya03vN",
}
WRONG = "CANARY-declared-wrong-Pw91jR"


def canary_scenario() -> dict[str, Any]:
    data: dict[str, Any] = builtin().model_dump()
    pbs1, pbs2, pbs3 = data["pbs_servers"]
    pbs1["users"] = {"root@pam": CANARIES["pbs1_root"]}
    pbs1["tokens"] = {"backup@pbs!pve": CANARIES["pbs1_token"]}
    pbs2["users"] = {"root@pam": CANARIES["pbs2_root"], "sync@pbs": CANARIES["pbs2_sync"]}
    pbs3["users"] = {"root@pam": CANARIES["pbs3_root"]}
    return data


def every_secret(lab: Lab) -> list[str]:
    return [*CANARIES.values(), WRONG, lab.token_secret, lab.readonly_token_secret, lab.password]


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
        "-l",
        "--tb=long",
        "--log-level=DEBUG",
        f"--log-file={log}",
        "--log-file-level=DEBUG",
        extra_env={env_name("offsite"): WRONG},
    )

    # The run really used the secrets: the others log in, the wrong one is refused.
    assert run.failed == {"node[offsite:pve1]", "node[offsite:pve2]"}
    assert "with the declared password failed" in run.message("node[offsite:pve1]")
    assert run.cases["node[homelab-backup:pve1]"].outcome == "passed"
    # urllib3 logs each scan/pbs request line at DEBUG: it is there, with the password masked.
    assert "scan/pbs?" in log.read_text(encoding="utf-8")
    assert "password=***" in log.read_text(encoding="utf-8")
    assert leaks(run, pytester.path, every_secret(canary_lab)) == []


def test_no_secret_appears_when_pve_refuses_the_token(
    canary_lab: Lab, run_checks: RunChecks, pytester: pytest.Pytester
) -> None:
    wrong_token = "CANARY-wrong-pve-token-Tk33"

    run = run_checks(
        canary_lab,
        "--log-level=DEBUG",
        f"--log-file={pytester.path / 'run.log'}",
        extra_env={"PBS_LAB_PVE_TOKEN_SECRET": wrong_token},
    )

    assert run.cases["drift[media]"].outcome == "failed"
    assert "cannot read PVE" in run.message("drift[media]")
    assert leaks(run, pytester.path, [*every_secret(canary_lab), wrong_token]) == []
