# ruff: noqa: E501 - request/answer tables read best one row per line
"""The PVE emulator, driven over real HTTPS by proxmoxer (TLS verified), answers like PVE."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException
from pve_fixtures import (
    AUDIT_PASSWORD,
    AUDIT_USER,
    FP,
    RO_TOKEN,
    RO_TOKEN_SECRET,
    ROOT_PASSWORD,
    ROOT_TOKEN,
    ROOT_TOKEN_SECRET,
    FakeAgent,
    PveLab,
    StartPve,
    fixture_pve,  # noqa: F401 - fixtures used by name
    fixture_pve_pki,  # noqa: F401
    fixture_start_pve,  # noqa: F401
    principals,
)

from pbs_compliance.lab.pve_api import decode_urlencoded
from pbs_compliance.lab.pve_auth import Principal

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "storage.cfg.sample"
DIGEST_REASON = "update storage failed: detected modified configuration - file changed by other user? Try again."
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"
PBS1 = {
    "type": "pbs",
    "storage": "pbs1",
    "server": "10.0.0.1",
    "datastore": "store1",
    "username": "backup@pbs",
    "password": "top-secret-pw",
    "fingerprint": FP,
    "content": "backup",
    "prune-backups": "keep-daily=7,keep-weekly=4",
}


@pytest.fixture
def api(pve: PveLab) -> ProxmoxAPI:
    """proxmoxer with the root API token."""
    return pve.client()


@pytest.fixture
def with_pbs1(api: ProxmoxAPI) -> ProxmoxAPI:
    """The client after creating pbs1 as the reference appendix does."""
    assert api.storage.post(**PBS1) == {"storage": "pbs1", "type": "pbs", "config": {}}
    return api


def rejected(call: Any, *args: Any, **kwargs: Any) -> ResourceException:
    with pytest.raises(ResourceException) as caught:
        call(*args, **kwargs)
    return caught.value


def raw(pve: PveLab, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A request proxmoxer would never send, made with requests (TLS verified)."""
    headers = kwargs.pop("headers", {})
    if kwargs.pop("token", True):
        headers["Authorization"] = f"PVEAPIToken={ROOT_TOKEN}={ROOT_TOKEN_SECRET}"
    with requests.Session() as session:
        return session.request(
            method,
            f"{pve.server.url}/api2/json{path}",
            headers=headers,
            verify=str(pve.pki.ca_file),
            timeout=5,
            **kwargs,
        )


def log_lines(pve: PveLab) -> list[dict[str, Any]]:
    return [json.loads(line) for line in pve.log_file.read_text().splitlines()]


# ---- storage configuration -------------------------------------------------------------


def test_create_read_update_delete_round_trip(with_pbs1: ProxmoxAPI, pve: PveLab) -> None:
    api = with_pbs1
    entry = api.storage("pbs1").get()
    assert entry["shared"] == 1
    assert entry["prune-backups"] == "keep-daily=7,keep-weekly=4"
    assert "password" not in entry
    assert api.storage("pbs1").put(namespace="prod", digest=entry["digest"]) == {
        "storage": "pbs1",
        "type": "pbs",
        "config": {},
    }
    api.storage("pbs1").put(port=8207)
    updated = api.storage("pbs1").get()
    assert (updated["namespace"], updated["port"]) == ("prod", 8207)
    assert updated["digest"] != entry["digest"]
    assert api.storage("pbs1").delete() is None
    missing = rejected(api.storage("pbs1").delete)
    assert (missing.status_code, missing.content) == (
        500,
        "delete storage failed: storage 'pbs1' does not exist",
    )


def test_state_is_persisted_like_etc_pve(with_pbs1: ProxmoxAPI, pve: PveLab) -> None:
    cfg = (pve.state_dir / "storage.cfg").read_text()
    assert cfg.startswith("dir: local\n\tpath /var/lib/vz\n")
    assert "pbs: pbs1\n\tdatastore store1\n\tserver 10.0.0.1\n" in cfg
    assert "top-secret-pw" not in cfg
    pw_file = pve.state_dir / "priv" / "storage" / "pbs1.pw"
    assert pw_file.read_text() == "top-secret-pw\n"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    with_pbs1.storage("pbs1").delete()
    assert not pw_file.exists()


def test_a_stale_digest_is_refused_and_an_empty_one_skips_the_check(
    with_pbs1: ProxmoxAPI,
) -> None:
    digest = with_pbs1.storage("pbs1").get()["digest"]
    with_pbs1.storage("pbs1").put(port=8207, digest=digest)
    stale = rejected(with_pbs1.storage("pbs1").put, port=8300, digest=digest)
    assert (stale.status_code, stale.content, stale.errors) == (500, DIGEST_REASON, None)
    with_pbs1.storage("pbs1").put(port=8300, digest="")
    assert with_pbs1.storage("pbs1").get()["port"] == 8300


@pytest.mark.parametrize(
    ("method", "params", "status", "reason", "errors"),
    [
        (
            "put",
            {"datastore": "x"},
            400,
            "Parameter verification failed.",
            {"datastore": UNDEFINED},
        ),
        (
            "put",
            {"server": "10.0.0.1"},
            500,
            "update storage failed: can't change value of fixed parameter 'server'",
            None,
        ),
        (
            "put",
            {"delete": "server"},
            500,
            "update storage failed: unable to delete required option 'server'",
            None,
        ),
        (
            "put",
            {"delete": "datastore"},
            500,
            "update storage failed: unable to delete required option 'datastore'",
            None,
        ),
        (
            "put",
            {"content": "backup,none"},
            500,
            "update storage failed: unable to combine 'none' with other content types",
            None,
        ),
        ("put", {"delete": "foo"}, 500, "update storage failed: no such option 'foo'", None),
        (
            "put",
            {"delete": "username", "username": "x@pbs"},
            500,
            "update storage failed: cannot set and delete property 'username' at the same time!",
            None,
        ),
        (
            "put",
            {"disable": "true"},
            400,
            "Parameter verification failed.",
            {"disable": "type check ('boolean') failed - got 'true'"},
        ),
        (
            "put",
            {"disable": True},
            400,
            "Parameter verification failed.",
            {"disable": "type check ('boolean') failed - got 'True'"},
        ),
        (
            "put",
            {"disable": ""},
            400,
            "Parameter verification failed.",
            {"disable": "type check ('boolean') failed - got ''"},
        ),
        ("put", {"path": "/x"}, 400, "Parameter verification failed.", {"path": UNDEFINED}),
        ("put", {"shared": 1}, 500, "update storage failed: unexpected property 'shared'", None),
        ("put", {"type": "dir"}, 400, "Parameter verification failed.", {"type": UNDEFINED}),
        (
            "put",
            {"fingerprint": "zz"},
            400,
            "Parameter verification failed.",
            {"fingerprint": "value does not match the regex pattern"},
        ),
        (
            "put",
            {"port": 70000},
            400,
            "Parameter verification failed.",
            {"port": "value must have a maximum value of 65535"},
        ),
        (
            "put",
            {"port": 0},
            400,
            "Parameter verification failed.",
            {"port": "value must have a minimum value of 1"},
        ),
        (
            "put",
            {"prune-backups": "keep-daily=x"},
            400,
            "Parameter verification failed.",
            {
                "prune-backups": "invalid format - format error\nprune-backups.keep-daily: type check ('integer') failed - got 'x'\n"
            },
        ),
        (
            "put",
            {"prune-backups": "keep-all=1,keep-daily=1"},
            400,
            "Parameter verification failed.",
            {
                "prune-backups": "invalid format - keep-all cannot be set together with other options.\n"
            },
        ),
        (
            "post",
            {"storage": "1bad"},
            400,
            "Parameter verification failed.",
            {"storage": "invalid format - storage ID '1bad' contains illegal characters\n"},
        ),
        ("post", {}, 500, "create storage failed: storage ID 'pbs1' already defined", None),
        (
            "post",
            {"storage": "pbs2", "datastore": None},
            500,
            "missing value for required option 'datastore'",
            None,
        ),
        ("post", {"storage": "pbs2", "path": "/x"}, 500, "unexpected property 'path'", None),
        (
            "post",
            {"storage": "pbs2", "digest": "abc"},
            400,
            "Parameter verification failed.",
            {"digest": UNDEFINED},
        ),
        ("get", {"storage": "nope"}, 500, "storage 'nope' does not exist", None),
        ("delete", {"force": 1}, 400, "Parameter verification failed.", {"force": UNDEFINED}),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
def test_every_appendix_rejection_reaches_proxmoxer_as_pve_sends_it(
    with_pbs1: ProxmoxAPI,
    method: str,
    params: dict[str, Any],
    status: int,
    reason: str,
    errors: dict[str, str] | None,
) -> None:
    api = with_pbs1
    if method == "post":
        call = api.storage.post
        params = {**PBS1, **params}
    else:
        storage_id = params.pop("storage", "pbs1")
        call = getattr(api.storage(storage_id), method)
    exc = rejected(call, **params)
    assert exc.status_code == status
    assert exc.content == reason
    assert exc.errors == errors


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"content": "images"}, {"content": "none"}),
        ({"disable": 1}, {"disable": 1}),
        ({"delete": "prune-backups"}, {"prune-backups": None}),
        ({"username": ""}, {"username": None}),
        ({"max-protected-backups": -1}, {"max-protected-backups": -1}),
        (
            {"namespace": "a//b", "fingerprint": FP.lower()},
            {"namespace": "a//b", "fingerprint": FP.lower()},
        ),
    ],
    ids=[
        "content-images-is-none",
        "disable",
        "delete-prune",
        "empty-username-removes",
        "max-protected--1",
        "unchecked",
    ],
)
def test_appendix_updates_that_succeed(
    with_pbs1: ProxmoxAPI, params: dict[str, Any], expected: dict[str, Any]
) -> None:
    with_pbs1.storage("pbs1").put(**params)
    entry = with_pbs1.storage("pbs1").get()
    for key, value in expected.items():
        assert entry.get(key) == value, key


@pytest.mark.parametrize("storage_id", ["pbs_x", "PBS1"])
def test_upper_case_and_underscore_ids_are_accepted(api: ProxmoxAPI, storage_id: str) -> None:
    api.storage.post(**{**PBS1, "storage": storage_id})
    assert api.storage(storage_id).get()["storage"] == storage_id


def test_create_checks_that_the_handling_node_reaches_the_pbs(api: ProxmoxAPI) -> None:
    down = rejected(api.storage.post, **{**PBS1, "server": "10.9.9.9"})
    assert (down.status_code, down.content) == (
        500,
        "create storage failed: pbs1: error fetching datastores - "
        "500 Can't connect to 10.9.9.9:8007 (Connection refused)",
    )
    wrong = rejected(api.storage.post, **{**PBS1, "datastore": "nostore"})
    assert wrong.content == (
        "create storage failed: pbs1: Cannot find datastore 'nostore', check permissions and existence!"
    )
    assert [s["storage"] for s in api.storage.get()] == ["local"]
    api.storage.post(**{**PBS1, "server": "10.9.9.9", "disable": 1})
    api.storage.post(**{**PBS1, "storage": "pbs2", "server": "10.9.9.9", "nodes": "pve2"})


def test_list_filters_by_type_and_carries_one_digest(with_pbs1: ProxmoxAPI) -> None:
    everything = with_pbs1.storage.get()
    assert {s["storage"] for s in everything} == {"local", "pbs1"}
    assert len({s["digest"] for s in everything}) == 1
    assert [s["storage"] for s in with_pbs1.storage.get(type="pbs")] == ["pbs1"]
    assert [s["storage"] for s in with_pbs1.storage.get(type="dir")] == ["local"]


def test_a_hand_written_storage_cfg_is_the_initial_state(
    start_pve: StartPve, tmp_path: Path
) -> None:
    state_dir = tmp_path / "handwritten"
    state_dir.mkdir()
    text = SAMPLE.read_text()
    (state_dir / "storage.cfg").write_text(text)
    (state_dir / "priv" / "storage").mkdir(parents=True)
    (state_dir / "priv" / "storage" / "offsite.pw").write_text("pw\n")
    lab = start_pve(state_dir=state_dir)
    entries = {s["storage"]: s for s in lab.client().storage.get()}
    assert "offsite" in entries
    assert entries["offsite"]["digest"] == hashlib.sha1(text.encode()).hexdigest()
    assert lab.server.store.state.password("offsite") == "pw"


def test_initial_config_and_passwords_seed_an_empty_state_dir(start_pve: StartPve) -> None:
    lab = start_pve(
        initial_storage_cfg="pbs: seeded\n\tdatastore store1\n\tserver 10.0.0.1\n\n",
        initial_passwords={"seeded": "seed-pw"},
    )
    assert (lab.state_dir / "priv" / "storage" / "seeded.pw").read_text() == "seed-pw\n"
    nodes = lab.client().nodes("pve1").storage.get(storage="seeded")
    assert nodes[0]["active"] == 1


# ---- wire format -------------------------------------------------------------------------


def test_errors_carry_message_and_errors_in_the_json_body(pve: PveLab) -> None:
    resp = raw(pve, "POST", "/storage", data={"type": "pbs", "storage": "1bad"})
    assert resp.status_code == 400
    assert resp.reason == "Parameter verification failed."
    assert resp.json() == {
        "data": None,
        "errors": {"storage": "invalid format - storage ID '1bad' contains illegal characters\n"},
        "message": "Parameter verification failed.\n",
    }
    missing = raw(pve, "GET", "/storage/nope")
    assert missing.json() == {"data": None, "message": "storage 'nope' does not exist\n"}


def test_unknown_paths_and_bodies_on_get_or_delete_give_501(pve: PveLab) -> None:
    unknown = raw(pve, "GET", "/foo")
    assert (unknown.status_code, unknown.reason) == (501, "Method 'GET /foo' not implemented")
    wrong_method = raw(pve, "PUT", "/storage")
    assert wrong_method.reason == "Method 'PUT /storage' not implemented"
    body = raw(pve, "DELETE", "/storage/local", data={"x": "1"})
    assert (body.status_code, body.reason, body.content) == (
        501,
        "Unexpected content for method 'DELETE'",
        b"",
    )


def test_json_bodies_and_query_parameters_are_merged(with_pbs1: ProxmoxAPI, pve: PveLab) -> None:
    resp = raw(
        pve,
        "PUT",
        "/storage/pbs1?namespace=fromquery",
        json={"namespace": "fromjson", "port": 8207},
    )
    assert resp.status_code == 200
    entry = with_pbs1.storage("pbs1").get()
    assert (entry["namespace"], entry["port"]) == ("fromquery", 8207)
    flag = raw(pve, "PUT", "/storage/pbs1", json={"disable": True})
    assert flag.status_code == 200
    assert with_pbs1.storage("pbs1").get()["disable"] == 1


def test_repeated_list_keys_are_joined_and_other_repeats_fail(
    with_pbs1: ProxmoxAPI, pve: PveLab
) -> None:
    ok = raw(
        pve,
        "PUT",
        "/storage/pbs1",
        data="nodes=pve1&nodes=pve2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ok.status_code == 200
    assert with_pbs1.storage("pbs1").get()["nodes"] == "pve1,pve2"
    bad = raw(
        pve,
        "PUT",
        "/storage/pbs1",
        data="namespace=a;namespace=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert bad.json()["errors"] == {"namespace": "type check ('string') failed - got ARRAY"}


def test_a_body_storage_that_contradicts_the_uri_is_refused(with_pbs1: ProxmoxAPI) -> None:
    exc = rejected(with_pbs1.storage("pbs1").put, storage="other")
    assert exc.status_code == 400
    assert exc.errors == {
        "storage": "duplicate parameter (already defined in URI) with conflicting values!"
    }
    with_pbs1.storage("pbs1").put(storage="pbs1", port=8300)


def test_urlencoded_decoding_quirks() -> None:
    assert decode_urlencoded("a=1;b=2&a=3&c&d=&e=x=y") == {
        "a": ["1", "3"],
        "b": "2",
        "c": None,
        "d": "",
        "e": "x",
    }
    assert decode_urlencoded("k=%2C+x&&k") == {"k": None}


# ---- authentication and privileges -------------------------------------------------------


def test_ticket_login_uses_the_cookie_and_needs_the_csrf_token(pve: PveLab) -> None:
    api = pve.client(user="root@pam", password=ROOT_PASSWORD)
    api.storage.post(**PBS1)
    assert api.storage("pbs1").get()["storage"] == "pbs1"
    login = raw(
        pve,
        "POST",
        "/access/ticket",
        data={"username": "root@pam", "password": ROOT_PASSWORD},
        token=False,
    )
    data = login.json()["data"]
    assert data["username"] == "root@pam"
    assert data["clustername"] == "lab"
    assert data["cap"]["storage"]["Datastore.Allocate"] == 1
    cookie = {"Cookie": f"PVEAuthCookie={data['ticket']}"}
    no_csrf = raw(
        pve, "PUT", "/storage/pbs1", data={"port": "8207"}, headers=dict(cookie), token=False
    )
    assert (no_csrf.status_code, no_csrf.reason, no_csrf.content) == (
        401,
        "Permission denied - invalid csrf token",
        b"",
    )
    with_csrf = raw(pve, "PUT", "/storage/pbs1", data={"port": "8207"}, token=False,
                    headers={**cookie, "CSRFPreventionToken": data["CSRFPreventionToken"]})  # fmt: skip
    assert with_csrf.status_code == 200
    header_ticket = raw(
        pve,
        "GET",
        "/version",
        token=False,
        headers={"Authorization": f"PVEAuthCookie={data['ticket']}"},
    )
    assert header_ticket.status_code == 200
    renewed = raw(
        pve,
        "POST",
        "/access/ticket",
        data={"username": "root@pam", "password": data["ticket"]},
        token=False,
    )
    assert renewed.status_code == 200


def test_a_failed_login_is_401_authentication_failure_with_a_json_body(pve: PveLab) -> None:
    resp = raw(
        pve,
        "POST",
        "/access/ticket",
        data={"username": "root@pam", "password": "wrong"},
        token=False,
    )
    assert (resp.status_code, resp.reason) == (401, "authentication failure")
    assert resp.json() == {"data": None, "message": "authentication failure\n"}
    with pytest.raises(AuthenticationError):
        pve.client(user="root@pam", password="wrong")
    token_login = raw(
        pve,
        "POST",
        "/access/ticket",
        data={"username": ROOT_TOKEN, "password": ROOT_TOKEN_SECRET},
        token=False,
    )
    assert token_login.status_code == 401
    realm = raw(
        pve,
        "POST",
        "/access/ticket",
        data={"username": "auditor", "realm": "pve", "password": AUDIT_PASSWORD},
        token=False,
    )
    assert realm.json()["data"]["username"] == AUDIT_USER
    assert "clustername" not in realm.json()["data"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "No ticket"),
        ({"Cookie": "PVEAuthCookie=PVE:root@pam:00000000::bogus"}, "Authentication failed!"),
        ({"Authorization": f"PVEAPIToken={ROOT_TOKEN}=wrong"}, "Authentication failed!"),
        ({"Authorization": "PVEAPIToken=not-a-token"}, "Authentication failed!"),
    ],
    ids=["nothing", "bad-ticket", "bad-secret", "malformed-token"],
)
def test_unauthenticated_requests_get_401_with_an_empty_body(
    pve: PveLab, headers: dict[str, str], reason: str
) -> None:
    resp = raw(pve, "GET", "/storage", headers=headers, token=False)
    assert (resp.status_code, resp.reason, resp.content) == (401, reason, b"")


def test_proxmoxer_sees_a_401_as_a_resource_exception(pve: PveLab) -> None:
    api = pve.client(user="root@pam", token_name="compliance", token_value="wrong")
    exc = rejected(api.storage.get)
    assert (exc.status_code, exc.content, exc.errors) == (
        401,
        "Authentication failed!",
        {"errors": b""},
    )


def test_tokens_need_no_csrf_and_a_space_separator_works(pve: PveLab) -> None:
    resp = raw(pve, "POST", "/storage", data={**PBS1, "storage": "viaspace"}, token=False,
               headers={"Authorization": f"PVEAPIToken {ROOT_TOKEN}={ROOT_TOKEN_SECRET}"})  # fmt: skip
    assert resp.status_code == 200


def test_a_read_only_token_lists_but_cannot_read_one_or_write(
    with_pbs1: ProxmoxAPI, pve: PveLab
) -> None:
    ro = pve.client(user="audit@pve", token_name="ro", token_value=RO_TOKEN_SECRET)
    assert {s["storage"] for s in ro.storage.get()} == {"local", "pbs1"}
    read = rejected(ro.storage("pbs1").get)
    assert (read.status_code, read.content) == (
        403,
        "Permission check failed (/storage/pbs1, Datastore.Allocate)",
    )
    attempts: list[tuple[Any, dict[str, Any]]] = [
        (ro.storage.post, {**PBS1, "storage": "x2"}),
        (ro.storage("pbs1").put, {"port": 1}),
        (ro.storage("pbs1").delete, {}),
        (ro.nodes("pve1").scan.pbs.get, {"server": "10.0.0.1", "username": "u", "password": "p"}),
    ]
    for call, kwargs in attempts:
        exc = rejected(call, **kwargs)
        assert (exc.status_code, exc.content) == (
            403,
            "Permission check failed (/storage, Datastore.Allocate)",
        )
    assert ro.nodes("pve1").storage("pbs1").status.get()["active"] == 1


def test_a_principal_without_audit_sees_no_storages(start_pve: StartPve) -> None:
    lab = start_pve(principals=[*principals(), Principal("nobody@pve!tk", "s", frozenset())])
    api = lab.client(user="nobody@pve", token_name="tk", token_value="s")
    assert api.storage.get() == []
    assert api.nodes("pve1").storage.get() == []
    exc = rejected(api.nodes("pve1").storage("local").status.get)
    assert (
        exc.content
        == "Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)"
    )


def test_failed_auth_is_held_back_when_configured(start_pve: StartPve) -> None:
    lab = start_pve(auth_failure_delay=0.3)
    started = time.monotonic()
    assert raw(lab, "GET", "/storage", token=False).status_code == 401
    assert time.monotonic() - started >= 0.3
    lab.server.faults.set(auth_delay=0.0)
    started = time.monotonic()
    raw(lab, "GET", "/storage", token=False)
    assert time.monotonic() - started < 0.3


# ---- node views ------------------------------------------------------------------------


def test_version_nodes_and_cluster_status(pve: PveLab) -> None:
    root = pve.client(user="root@pam", password=ROOT_PASSWORD)
    assert root.version.get()["release"] == "9.1"
    nodes = root.nodes.get()
    assert [n["node"] for n in nodes] == ["pve1", "pve2"]
    assert nodes[0]["ssl_fingerprint"].count(":") == 31
    assert "uptime" in nodes[0]
    assert "uptime" not in pve.client().nodes.get()[0]
    status = root.cluster.status.get()
    assert status[0] == {
        "type": "cluster",
        "id": "cluster",
        "name": "lab",
        "nodes": 2,
        "quorate": 1,
        "version": 2,
    }
    assert [s.get("local") for s in status[1:]] == [1, 0]


def test_each_node_reports_its_own_view_of_the_pbs(with_pbs1: ProxmoxAPI) -> None:
    with_pbs1.storage.post(**{**PBS1, "storage": "off", "disable": 1})
    with_pbs1.storage.post(**{**PBS1, "storage": "only2", "nodes": "pve2", "server": "10.0.0.9"})
    on1 = {s["storage"]: s for s in with_pbs1.nodes("pve1").storage.get()}
    assert on1["pbs1"] == {
        "storage": "pbs1", "type": "pbs", "content": "backup", "shared": 1, "enabled": 1,
        "active": 1, "total": 1000, "used": 250, "avail": 750, "used_fraction": 0.25,
    }  # fmt: skip
    assert (on1["off"]["enabled"], on1["off"]["active"]) == (0, 0)
    assert on1["only2"]["enabled"] == 0
    on2 = {s["storage"]: s for s in with_pbs1.nodes("pve2").storage.get()}
    assert (on2["pbs1"]["enabled"], on2["pbs1"]["active"], on2["pbs1"]["total"]) == (1, 0, 0)
    assert "used_fraction" not in on2["pbs1"]
    assert (on2["only2"]["enabled"], on2["only2"]["active"]) == (1, 0)
    enabled = with_pbs1.nodes("pve1").storage.get(enabled=1)
    assert "off" not in {s["storage"] for s in enabled}
    backups = with_pbs1.nodes("pve1").storage.get(content="backup")
    assert {s["storage"] for s in backups} == {"local", "pbs1"}
    shared = with_pbs1.nodes("pve1").storage.get(target="pve2")
    assert {s["storage"] for s in shared} == {"pbs1", "off", "only2"}


def test_node_storage_status_and_unknown_storage(with_pbs1: ProxmoxAPI) -> None:
    status = with_pbs1.nodes("pve1").storage("pbs1").status.get()
    assert status == {
        "type": "pbs", "content": "backup", "shared": 1, "enabled": 1,
        "active": 1, "total": 1000, "used": 250, "avail": 750,
    }  # fmt: skip
    for call in (with_pbs1.nodes("pve1").storage("nope").status.get,):
        exc = rejected(call)
        assert (exc.status_code, exc.errors) == (400, {"storage": "No such storage."})
    exc = rejected(with_pbs1.nodes("pve1").storage.get, storage="nope")
    assert exc.errors == {"storage": "No such storage."}
    one = with_pbs1.nodes("pve1").storage.get(storage="pbs1")
    assert [s["storage"] for s in one] == ["pbs1"]


def test_an_unknown_node_cannot_be_proxied_to(with_pbs1: ProxmoxAPI) -> None:
    exc = rejected(with_pbs1.nodes("pve9").storage.get)
    assert (exc.status_code, exc.content) == (
        500,
        "hostname lookup 'pve9' failed - failed to get address info for: pve9: "
        "Name or service not known",
    )


def test_identical_activations_run_once_per_request_and_in_parallel(start_pve: StartPve) -> None:
    agent = FakeAgent("pve1", {"10.0.0.1": ["store1"]}, delay=0.2)
    lab = start_pve(agents={"pve1": agent})
    cfg = "".join(
        f"pbs: e{i:03d}\n\tdatastore store1\n\tserver {'10.0.0.1' if i % 2 else '10.0.0.2'}\n\n"
        for i in range(40)
    )
    lab.server.store.write(lambda s: (type(s).from_text(cfg), None))
    started = time.monotonic()
    entries = lab.client().nodes("pve1").storage.get()
    elapsed = time.monotonic() - started
    assert agent.connects() == 2
    assert agent.calls.count(("pooled", "")) == 2  # one block per login (server)
    assert elapsed < 1.0
    active = {s["storage"]: s["active"] for s in entries if s["type"] == "pbs"}
    assert active["e001"] == 1
    assert active["e000"] == 0


def test_scan_lists_datastores_or_reports_the_client_error(pve: PveLab) -> None:
    api = pve.client()
    found = api.nodes("pve1").scan.pbs.get(
        server="10.0.0.1", username="root@pam", password="x", fingerprint=FP, port=8007
    )
    assert found == [{"store": "store1"}, {"store": "store2"}]
    exc = rejected(
        api.nodes("pve2").scan.pbs.get, server="10.0.0.1", username="root@pam", password="x"
    )
    assert (exc.status_code, exc.content) == (
        500,
        "error fetching datastores - 500 Can't connect to 10.0.0.1:8007 (Connection refused)",
    )
    missing = rejected(api.nodes("pve1").scan.pbs.get, server="10.0.0.1")
    assert missing.errors == {
        "username": "property is missing and it is not optional",
        "password": "property is missing and it is not optional",
    }


# ---- faults, admin endpoint, request log -------------------------------------------------


def test_the_nth_request_and_a_matching_path_fail_with_the_given_message(
    with_pbs1: ProxmoxAPI, pve: PveLab
) -> None:
    pve.server.faults.set(fail_nth=2, fail_message="boom on two")
    with_pbs1.storage.get()
    exc = rejected(with_pbs1.storage.get)
    assert (exc.status_code, exc.content) == (500, "boom on two")
    with_pbs1.storage.get()
    pve.server.faults.set(fail_path="/storage/pbs1", fail_method="PUT", fail_message="no puts")
    assert with_pbs1.storage("pbs1").get()["storage"] == "pbs1"
    assert rejected(with_pbs1.storage("pbs1").put, port=1).content == "no puts"
    pve.server.faults.clear()
    with_pbs1.storage("pbs1").put(port=1)


def test_dropped_connections_and_latency(with_pbs1: ProxmoxAPI, pve: PveLab) -> None:
    pve.server.faults.set(drop_next=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        with_pbs1.storage.get()
    assert with_pbs1.storage.get()
    pve.server.faults.set(drop_path="/api2/json/storage", drop_method="GET")
    with pytest.raises(requests.exceptions.ConnectionError):
        with_pbs1.storage.get()
    pve.server.faults.clear()
    pve.server.faults.set(latency=0.3)
    started = time.monotonic()
    with_pbs1.version.get()
    assert time.monotonic() - started >= 0.3
    pve.server.faults.clear()
    dropped = [line for line in log_lines(pve) if line["status"] is None]
    assert [line["path"] for line in dropped] == ["/api2/json/storage"] * 2


def test_a_concurrent_writer_makes_the_next_put_with_the_read_digest_fail_once(
    with_pbs1: ProxmoxAPI, pve: PveLab
) -> None:
    pve.server.faults.set(concurrent_writer=True)
    digest = with_pbs1.storage("pbs1").get()["digest"]
    exc = rejected(with_pbs1.storage("pbs1").put, port=8207, digest=digest)
    assert exc.content == DIGEST_REASON
    fresh = with_pbs1.storage("pbs1").get()["digest"]
    with_pbs1.storage("pbs1").put(port=8207, digest=fresh)
    local = next(s for s in with_pbs1.storage.get() if s["storage"] == "local")
    assert set(local["content"].split(",")) == {
        "iso",
        "backup",
        "images",
        "snippets",
        "rootdir",
        "vztmpl",
    }


def test_the_admin_endpoint_sets_faults_and_forwards_other_lab_routes(start_pve: StartPve) -> None:
    seen: list[tuple[str, object]] = []

    def handler(path: str, body: object) -> object:
        seen.append((path, body))
        if body == {"explode": True}:
            raise RuntimeError("pbs fault failed")
        return {"ok": True}

    lab = start_pve(admin_handler=handler)
    set_faults = raw(lab, "POST", "/_lab/faults", json={"latency": 0.01, "fail_path": "/nodes"})
    assert set_faults.json()["data"]["fail_path"] == "/nodes"
    assert raw(lab, "GET", "/_lab/faults").json()["data"]["latency"] == 0.01
    assert raw(lab, "POST", "/_lab/faults", json={"bogus": 1}).status_code == 400
    assert (
        raw(lab, "POST", "/_lab/faults", json={"clear": True}).json()["data"]["fail_path"] is None
    )
    forwarded = raw(lab, "POST", "/_lab/pbs/down", json={"server": "pbs1"})
    assert forwarded.json() == {"data": {"ok": True}}
    assert seen == [("/_lab/pbs/down", {"server": "pbs1"})]
    failing = raw(lab, "POST", "/_lab/pbs/down", json={"explode": True})
    assert (failing.status_code, failing.reason) == (500, "pbs fault failed")
    ro = raw(
        lab,
        "GET",
        "/_lab/faults",
        token=False,
        headers={"Authorization": f"PVEAPIToken={RO_TOKEN}={RO_TOKEN_SECRET}"},
    )
    assert ro.status_code == 403
    assert raw(lab, "GET", "/_lab/faults", token=False).status_code == 401
    assert raw(lab, "POST", "/_lab/faults", data=b"[]").status_code == 400


def test_every_request_is_logged_with_secrets_redacted(pve: PveLab) -> None:
    api = pve.client(user="root@pam", password=ROOT_PASSWORD)
    api.storage.post(**PBS1)
    api.nodes("pve1").scan.pbs.get(server="10.0.0.1", username="root@pam", password="scan-secret")
    text = pve.log_file.read_text()
    for secret in (ROOT_PASSWORD, "top-secret-pw", "scan-secret", ROOT_TOKEN_SECRET):
        assert secret not in text
    lines = log_lines(pve)
    login, create, scan = lines[0], lines[1], lines[2]
    assert (login["method"], login["path"], login["status"], login["principal"]) == (
        "POST", "/api2/json/access/ticket", 200, None,
    )  # fmt: skip
    assert login["params"]["password"] == "***"
    assert create["params"]["password"] == "***"
    assert create["params"]["datastore"] == "store1"
    assert create["principal"] == "root@pam"
    assert scan["path"] == "/api2/json/nodes/pve1/scan/pbs"
    assert scan["params"]["password"] == "***"
    assert isinstance(create["time"], float)


def test_concurrent_creates_are_serialised_by_the_config_lock(pve: PveLab) -> None:
    errors: list[BaseException] = []

    def make(i: int) -> None:
        try:
            client = pve.client()
            client.storage.post(**{**PBS1, "storage": f"c{i:02d}"})
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = {s["storage"] for s in pve.client().storage.get(type="pbs")}
    assert ids == {f"c{i:02d}" for i in range(8)}


@pytest.fixture
def stopped_twice(pve: PveLab) -> Iterator[PveLab]:
    yield pve
    pve.server.stop()


def test_stop_is_idempotent_and_the_port_is_gone(stopped_twice: PveLab) -> None:
    url = stopped_twice.server.url
    stopped_twice.server.stop()
    stopped_twice.server.stop()
    with pytest.raises(RuntimeError):
        _ = stopped_twice.server.port
    with pytest.raises(requests.exceptions.ConnectionError), requests.Session() as s:
        s.get(url, timeout=1, verify=False)


def test_json_bodies_are_read_as_pve_reads_them(with_pbs1: ProxmoxAPI, pve: PveLab) -> None:
    json_header = {"Content-Type": "application/json"}
    broken = raw(pve, "PUT", "/storage/pbs1", data=b"{nope", headers=dict(json_header))
    assert broken.status_code == 400
    not_object = raw(pve, "PUT", "/storage/pbs1", data=b"[1]", headers=dict(json_header))
    assert not_object.status_code == 400
    nodes = raw(pve, "PUT", "/storage/pbs1", json={"nodes": ["pve1", "pve2"]})
    assert nodes.status_code == 200
    assert with_pbs1.storage("pbs1").get()["nodes"] == "pve1,pve2"
    null = raw(pve, "PUT", "/storage/pbs1", json={"namespace": None})
    assert null.reason == "update storage failed: got undefined value for option 'namespace'"
    nested = raw(pve, "PUT", "/storage/pbs1", json={"namespace": {"a": 1}})
    assert nested.status_code == 200
    assert with_pbs1.storage("pbs1").get()["namespace"] == '{"a": 1}'


def test_localhost_is_the_handling_node(with_pbs1: ProxmoxAPI) -> None:
    here = with_pbs1.nodes("localhost").storage.get(storage="pbs1")
    assert here[0]["active"] == 1
