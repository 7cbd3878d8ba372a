"""The client side of the lab's admin API: change a running lab from another process.

`pbs lab fault|backup|guest|job` talk to a lab started by `pbs lab serve`, which may run in
another shell. They find it through its state directory (`lab.json`: the PVE URL, an API token
and the CA) and `POST /api2/json/_lab/ROUTE`, authenticated like any PVE client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

__all__ = ["AdminError", "NoLab", "post"]


class AdminError(Exception):
    """The running lab did not do what was asked; the message says why, for a person."""


class NoLab(AdminError):
    """There is no lab in that state directory (a usage mistake, not a lab failure)."""


def post(state_dir: Path, route: str, body: Mapping[str, Any], refused: str = "the fault") -> Any:
    """POST `body` to the running lab's `_lab/ROUTE`; returns the answer's `data`.

    `refused` names what was asked, for the message when the lab says no (`the fault`,
    `the change`).
    """
    try:
        lab = json.loads((state_dir / "lab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise NoLab(
            f"no running lab in {state_dir} (no lab.json): start one with "
            f"`pbs lab serve --state-dir {state_dir}`"
        ) from None
    pve = lab["pve"]
    try:
        response = requests.post(
            f"{pve['url'].rstrip('/')}/api2/json/_lab/{route}",
            json=dict(body),
            headers={"Authorization": f"PVEAPIToken={pve['token_id']}={pve['token_secret']}"},
            verify=pve["ca_file"],
            timeout=10,
        )
    except (requests.RequestException, OSError) as exc:  # OSError: its ca.pem is gone
        raise AdminError(
            f"the lab in {state_dir} does not answer at {pve['url']} "
            f"({type(exc).__name__}; stopped?)"
        ) from None
    if response.status_code != 200:
        reason = response.reason or f"HTTP {response.status_code}"
        raise AdminError(f"the lab refused {refused}: {reason}")
    return response.json().get("data")
