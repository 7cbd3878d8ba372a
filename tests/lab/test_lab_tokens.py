"""API token secrets the lab hands out look like the ones PVE and PBS generate (#10 item 6).

Real PVE (`pveum user token add`) and PBS (`proxmox-backup-manager user generate-token`) answer
with a lower-case UUID; a widely used third-party client refuses any other shape before it sends
a request, so every token the lab hands out - in lab.json, lab.env and after a restart in the
same state directory - must have that shape, and must still log in over the wire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from pbs_compliance.lab.fixtures import LabFactory
from pbs_compliance.lab.runner import Lab, is_token_secret

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TOKEN = "backup@pbs!pve"  # the built-in lab's PBS token (the 'archive' entry logs in with it)


def handed_out(lab: Lab) -> dict[str, str]:
    """Every token secret a user of this lab can read, by where it is read."""
    data = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))
    env = dict(
        line.split("=", 1)
        for line in (lab.state_dir / "lab.env").read_text(encoding="utf-8").splitlines()
    )
    return {
        "lab.json pve.token_secret": data["pve"]["token_secret"],
        "lab.json pve.readonly_token_secret": data["pve"]["readonly_token_secret"],
        "lab.env PBS_LAB_PVE_TOKEN_SECRET": env["PBS_LAB_PVE_TOKEN_SECRET"],
        "lab.env PBS_LAB_PVE_READONLY_TOKEN_SECRET": env["PBS_LAB_PVE_READONLY_TOKEN_SECRET"],
        "lab.env PBS_LAB_ARCHIVE_PASSWORD (a PBS token)": env["PBS_LAB_ARCHIVE_PASSWORD"],
        "PBS pbs1 token": lab.pbs_password("pbs1.lab.example", TOKEN),
    }


def assert_real_shape_and_usable(lab: Lab) -> dict[str, str]:
    tokens = handed_out(lab)
    wrong = {where: len(value) for where, value in tokens.items() if not UUID.fullmatch(value)}
    assert wrong == {}, f"not a lower-case UUID (length shown): {wrong}"
    data = json.loads((lab.state_dir / "lab.json").read_text(encoding="utf-8"))
    pve = data["pve"]
    for token_id, secret in (
        (pve["token_id"], pve["token_secret"]),
        (pve["readonly_token_id"], pve["readonly_token_secret"]),
    ):
        answer = requests.get(
            f"{pve['url']}/api2/json/version",
            headers={"Authorization": f"PVEAPIToken={token_id}={secret}"},
            verify=pve["ca_file"],
            timeout=5,
        )
        assert answer.status_code == 200, token_id
    pbs = lab.pbs["pbs1.lab.example"]
    pinned = lab.state_dir / "pbs1-served.pem"  # trust exactly the self-signed certificate
    pinned.write_bytes(pbs.cert_pem)
    answer = requests.get(
        f"https://{pbs.address}:{pbs.port}/api2/json/admin/datastore",
        headers={"Authorization": f"PBSAPIToken={TOKEN}:{tokens['PBS pbs1 token']}"},
        verify=str(pinned),
        timeout=5,
    )
    assert answer.status_code == 200
    return tokens


def test_every_token_the_lab_hands_out_is_a_lower_case_uuid_and_logs_in(lab: Lab) -> None:
    assert_real_shape_and_usable(lab)
    assert lab.pbs["pbs1.lab.example"].spec.tokens[TOKEN] == lab.pbs_password(
        "pbs1.lab.example", TOKEN
    )


def test_a_restarted_lab_keeps_its_uuid_tokens(make_lab: LabFactory, tmp_path: Path) -> None:
    first = make_lab(state_dir=tmp_path)
    before = handed_out(first)
    first.stop()
    state = json.loads((tmp_path / "lab-state.json").read_text(encoding="utf-8"))
    assert UUID.fullmatch(state["token_secret"])
    assert UUID.fullmatch(state["readonly_token_secret"])
    assert UUID.fullmatch(state["servers"]["pbs1.lab.example"]["credentials"][TOKEN])

    second = make_lab(state_dir=tmp_path)
    assert assert_real_shape_and_usable(second) == before


def test_a_pve_token_of_the_old_shape_kept_from_an_earlier_run_is_replaced(
    make_lab: LabFactory, tmp_path: Path
) -> None:
    first = make_lab(state_dir=tmp_path)
    password = first.password
    first.stop()
    path = tmp_path / "lab-state.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["token_secret"] = state["readonly_token_secret"] = "0123456789abcdef" * 2
    path.write_text(json.dumps(state), encoding="utf-8")

    second = make_lab(state_dir=tmp_path)
    assert UUID.fullmatch(second.token_secret)
    assert UUID.fullmatch(second.readonly_token_secret)
    assert second.password == password  # the rest is kept


def test_the_shape_check() -> None:
    assert is_token_secret("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    for wrong in ("0123456789abcdef0123456789abcdef", "0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D", 1):
        assert not is_token_secret(wrong)
