from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from proxmoxer import ProxmoxAPI

from pbs_compliance.lab.certs import fingerprint_of_der
from pbs_compliance.lab.pbs_server import PbsServer

insecure_ok = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def password(server: PbsServer, user: str = "root@pam") -> str:
    return server.spec.users[user]


def token_secret(server: PbsServer) -> str:
    return server.spec.tokens["sync@pbs!ci"]


def base(pbs: PbsServer) -> str:
    return f"https://{pbs.address}:{pbs.port}/api2/json"


def trusting(server: PbsServer, tmp_path: Path) -> requests.Session:
    """A requests session that trusts exactly the server's self-signed certificate."""
    ca = tmp_path / f"trusted-{server.port}.pem"
    ca.write_bytes(server.cert_pem)
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override ``verify``
    s.verify = str(ca)
    return s


@pytest.fixture
def session(pbs: PbsServer, tmp_path: Path) -> Iterator[requests.Session]:
    with trusting(pbs, tmp_path) as s:
        yield s


def login(session: requests.Session, pbs: PbsServer, user: str, password: str) -> str:
    resp = session.post(
        f"{base(pbs)}/access/ticket", data={"username": user, "password": password}, timeout=5
    )
    resp.raise_for_status()
    ticket: str = resp.json()["data"]["ticket"]
    return ticket


def test_ping_answers_without_authentication(pbs: PbsServer, session: requests.Session) -> None:
    resp = session.get(f"{base(pbs)}/ping", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"data": {"pong": True}}


def test_version_without_credentials_is_401_with_bare_text_body(
    pbs: PbsServer, session: requests.Session
) -> None:
    resp = session.get(f"{base(pbs)}/version", timeout=5)
    assert resp.status_code == 401
    assert resp.text == "authentication failed - no authentication credentials provided."
    assert resp.headers["Content-Type"].startswith("application/json")


def test_form_login_returns_ticket_csrf_and_the_cookie_authenticates(
    pbs: PbsServer, session: requests.Session
) -> None:
    resp = session.post(
        f"{base(pbs)}/access/ticket",
        data={"username": "root@pam", "password": password(pbs)},
        timeout=5,
    )
    data = resp.json()["data"]
    assert data["username"] == "root@pam"
    assert data["ticket"].startswith("PBS:root@pam:")
    assert len(data["CSRFPreventionToken"].split(":")[0]) == 8
    session.cookies.set("PBSAuthCookie", data["ticket"])
    version = session.get(f"{base(pbs)}/version", timeout=5).json()["data"]
    assert set(version) == {"version", "release", "repoid"}


def test_json_login_works_too(pbs: PbsServer, session: requests.Session) -> None:
    resp = session.post(
        f"{base(pbs)}/access/ticket",
        json={"username": "backup@pbs", "password": password(pbs, "backup@pbs")},
        timeout=5,
    )
    assert resp.json()["data"]["username"] == "backup@pbs"


def test_ticket_renewal_with_the_old_ticket_as_password(
    pbs: PbsServer, session: requests.Session
) -> None:
    ticket = login(session, pbs, "root@pam", password(pbs))
    renewed = login(session, pbs, "root@pam", ticket)
    assert renewed != ticket
    resp = session.post(
        f"{base(pbs)}/access/ticket", data={"username": "backup@pbs", "password": ticket}
    )
    assert resp.status_code == 401


@pytest.mark.parametrize(
    ("form", "status", "text"),
    [
        ({"username": "root@pam", "password": "wrong"}, 401, "permission check failed."),
        ({"username": "ghost@pbs", "password": "x"}, 401, "permission check failed."),
        ({"password": "x"}, 400, "parameter verification failed - 'username'"),
        ({"username": "root@pam"}, 400, "no password provided"),
    ],
)
def test_failed_logins_are_counted_and_answered_like_pbs(
    pbs: PbsServer, session: requests.Session, form: dict[str, str], status: int, text: str
) -> None:
    before = pbs.login_attempts
    resp = session.post(f"{base(pbs)}/access/ticket", data=form, timeout=5)
    assert resp.status_code == status
    assert resp.text.startswith(text)
    assert pbs.login_attempts == before + 1


def test_bad_json_body_is_a_400(pbs: PbsServer, session: requests.Session) -> None:
    url = f"{base(pbs)}/access/ticket"
    headers = {"Content-Type": "application/json"}
    assert session.post(url, data=b"{nope", headers=headers, timeout=5).status_code == 400
    assert session.post(url, data=b"[1]", headers=headers, timeout=5).status_code == 400


def test_stale_ticket_cookie_is_rejected(pbs: PbsServer, session: requests.Session) -> None:
    session.cookies.set("PBSAuthCookie", "PBS:root@pam:00000000::forged")
    resp = session.get(f"{base(pbs)}/version", timeout=5)
    assert (resp.status_code, resp.text) == (401, "authentication failed - invalid ticket")


@pytest.mark.parametrize("separator", ["=", " "])
def test_api_token_header_with_either_separator(
    pbs: PbsServer, session: requests.Session, separator: str
) -> None:
    header = {"Authorization": f"PBSAPIToken{separator}sync@pbs!ci:{token_secret(pbs)}"}
    resp = session.get(f"{base(pbs)}/admin/datastore", headers=header, timeout=5)
    assert resp.json() == {"data": [{"store": "homelab"}]}


@pytest.mark.parametrize(
    "value",
    ["PBSAPIToken=sync@pbs!ci:wrong", "PBSAPIToken=sync@pbs!ci={secret}", "PBSAPIToken="],
)
def test_bad_api_tokens_are_401(pbs: PbsServer, session: requests.Session, value: str) -> None:
    value = value.format(secret=token_secret(pbs))
    resp = session.get(f"{base(pbs)}/version", headers={"Authorization": value}, timeout=5)
    assert (resp.status_code, resp.text) == (401, "authentication failed - invalid API token")


def test_datastore_list_follows_the_acl(pbs: PbsServer, session: requests.Session) -> None:
    session.cookies.set("PBSAuthCookie", login(session, pbs, "root@pam", password(pbs)))
    stores = session.get(f"{base(pbs)}/admin/datastore", timeout=5).json()["data"]
    assert stores == [{"store": "homelab"}, {"store": "offsite"}]
    session.cookies.set(
        "PBSAuthCookie", login(session, pbs, "backup@pbs", password(pbs, "backup@pbs"))
    )
    stores = session.get(f"{base(pbs)}/admin/datastore", timeout=5).json()["data"]
    assert stores == [{"store": "homelab"}]
    resp = session.get(f"{base(pbs)}/admin/datastore/offsite/namespace", timeout=5)
    assert (resp.status_code, resp.text) == (403, "permission check failed")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["", "prod", "prod/vms"]),
        ({"max-depth": "1"}, ["", "prod"]),
        ({"max-depth": "0"}, [""]),
        ({"parent": "prod"}, ["prod", "prod/vms"]),
        ({"parent": "prod/vms"}, ["prod/vms"]),
    ],
)
def test_namespaces_parent_first_then_below_up_to_max_depth(
    pbs: PbsServer, session: requests.Session, query: dict[str, str], expected: list[str]
) -> None:
    session.cookies.set("PBSAuthCookie", login(session, pbs, "root@pam", password(pbs)))
    resp = session.get(f"{base(pbs)}/admin/datastore/homelab/namespace", params=query, timeout=5)
    assert [item["ns"] for item in resp.json()["data"]] == expected


def test_namespace_ancestors_are_implicit(
    start_pbs: Callable[..., PbsServer], tmp_path: Path
) -> None:
    server = start_pbs(datastores={"deep": ["a/b/c"]}, acl={})
    api = {"Authorization": f"PBSAPIToken=sync@pbs!ci:{token_secret(server)}"}
    with trusting(server, tmp_path) as session:
        url = f"{base(server)}/admin/datastore/deep/namespace"
        resp = session.get(url, headers=api, timeout=5)
    assert [item["ns"] for item in resp.json()["data"]] == ["", "a", "a/b", "a/b/c"]


@pytest.mark.parametrize(
    ("path", "query", "status", "text"),
    [
        ("/admin/datastore/homelab/namespace", {"max-depth": "8"}, 400, "parameter verification"),
        ("/admin/datastore/homelab/namespace", {"max-depth": "x"}, 400, "parameter verification"),
        # A missing parent is a 403 like a hidden one: PBS does not tell which (namespace.rs).
        ("/admin/datastore/homelab/namespace", {"parent": "nope"}, 403, "permission check"),
        ("/admin/datastore/missing/namespace", {}, 400, "datastore 'missing' does not exist"),
        ("/nodes", {}, 404, "Path '/api2/json/nodes' not found."),
    ],
)
def test_namespace_and_path_errors(
    pbs: PbsServer,
    session: requests.Session,
    path: str,
    query: dict[str, str],
    status: int,
    text: str,
) -> None:
    session.cookies.set("PBSAuthCookie", login(session, pbs, "root@pam", password(pbs)))
    resp = session.get(f"{base(pbs)}{path}", params=query, timeout=5)
    assert resp.status_code == status
    assert resp.text.startswith(text)


def test_wrong_method_and_non_api_paths(pbs: PbsServer, session: requests.Session) -> None:
    assert session.post(f"{base(pbs)}/version", timeout=5).status_code == 405
    url = f"https://{pbs.address}:{pbs.port}/"
    assert session.get(url, timeout=5).status_code == 404


def test_datastore_status_is_stable_and_plausible(
    pbs: PbsServer, session: requests.Session
) -> None:
    session.cookies.set("PBSAuthCookie", login(session, pbs, "root@pam", password(pbs)))
    url = f"{base(pbs)}/admin/datastore/homelab/status"
    first = session.get(url, timeout=5).json()["data"]
    second = session.get(url, timeout=5).json()["data"]
    assert first == second
    assert first["total"] == first["used"] + first["avail"]
    assert 0 < first["used"] < first["total"]


def pbs_api(pbs: PbsServer, **credentials: str) -> ProxmoxAPI:
    """proxmoxer's PBS backend for `pbs`, logged in with `credentials` (user and password or
    token), not verifying the lab's certificate."""
    return ProxmoxAPI(
        pbs.address, port=pbs.port, service="PBS", verify_ssl=False, timeout=5, **credentials
    )


@insecure_ok
def test_proxmoxer_pbs_backend_with_password(pbs: PbsServer) -> None:
    api = pbs_api(pbs, user="root@pam", password=password(pbs))
    assert api.ping.get() == {"pong": True}
    assert api.version.get()["version"]
    assert [d["store"] for d in api.admin.datastore.get()] == ["homelab", "offsite"]
    namespaces = api.admin.datastore("homelab").namespace.get(parent="prod")
    assert [n["ns"] for n in namespaces] == ["prod", "prod/vms"]


@insecure_ok
def test_proxmoxer_pbs_backend_with_token(pbs: PbsServer) -> None:
    api = pbs_api(pbs, user="sync@pbs", token_name="ci", token_value=token_secret(pbs))
    assert api.admin.datastore.get() == [{"store": "homelab"}]


@insecure_ok
def test_proxmoxer_login_failure_raises_authentication_error(pbs: PbsServer) -> None:
    from proxmoxer import AuthenticationError

    with pytest.raises(AuthenticationError):
        pbs_api(pbs, user="root@pam", password="wrong")


def test_down_refuses_keeps_the_port_and_comes_back(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    port = pbs.port
    pbs.set_mode("down")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((pbs.address, port), timeout=1).close()
    thief = socket.socket()
    with pytest.raises(OSError, match="in use"):
        thief.bind((pbs.address, port))
    thief.close()
    pbs.set_mode("up")
    assert pbs.port == port
    assert fingerprint_of_der(fetch_certificate(pbs.address, port)) == pbs.fingerprint


def test_down_drops_open_connections(pbs: PbsServer, session: requests.Session) -> None:
    assert session.get(f"{base(pbs)}/ping", timeout=5).ok  # keep-alive connection open
    pbs.set_mode("down")
    with pytest.raises(requests.ConnectionError):
        session.get(f"{base(pbs)}/ping", timeout=5)
    pbs.set_mode("up")
    assert session.get(f"{base(pbs)}/ping", timeout=5).ok


def test_blackhole_accepts_tcp_but_never_completes_tls(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    pbs.set_mode("blackhole")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.monotonic()
    with (
        socket.create_connection((pbs.address, pbs.port), timeout=0.3) as raw,
        pytest.raises(TimeoutError),
    ):
        context.wrap_socket(raw)
    assert 0.25 < time.monotonic() - started < 2.0
    pbs.set_mode("up")
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == pbs.fingerprint


def test_blackhole_straight_to_down_and_back(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    pbs.set_mode("blackhole")
    held = socket.create_connection((pbs.address, pbs.port), timeout=1)
    pbs.set_mode("down")
    assert held.recv(1) == b""  # the held connection is closed with the server
    held.close()
    pbs.set_mode("down")  # no-op
    pbs.set_mode("up")
    assert fetch_certificate(pbs.address, pbs.port)
    with pytest.raises(ValueError, match="unknown mode"):
        pbs.set_mode("sideways")  # type: ignore[arg-type]


def test_expired_certificate_and_back(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    valid_fp = pbs.fingerprint
    pbs.set_expired(True)
    assert pbs.fingerprint != valid_fp
    der = fetch_certificate(pbs.address, pbs.port)
    assert fingerprint_of_der(der) == pbs.fingerprint
    cert = x509.load_der_x509_certificate(der)
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    pbs.set_expired(True)  # no change, no new certificate
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == pbs.fingerprint
    pbs.set_expired(False)
    cert = x509.load_der_x509_certificate(fetch_certificate(pbs.address, pbs.port))
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC)


def test_no_longer_expired_serves_the_original_certificate_again(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    original = pbs.fingerprint
    pbs.set_expired(True)
    expired = fingerprint_of_der(fetch_certificate(pbs.address, pbs.port))
    assert expired == pbs.fingerprint != original
    pbs.set_expired(False)  # the undo of --expired: the same certificate as before, not a new one
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == original
    assert pbs.fingerprint == original
    pbs.set_expired(True)  # expiring again serves the same expired certificate again
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == expired


def test_a_renewal_while_expired_is_expired_and_the_undo_still_restores_the_original(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    original = pbs.fingerprint
    pbs.set_expired(True)
    expired = pbs.fingerprint
    renewed = pbs.renew_certificate()
    assert renewed not in (expired, original)
    cert = x509.load_der_x509_certificate(fetch_certificate(pbs.address, pbs.port))
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)
    pbs.set_expired(False)
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == original
    new = pbs.renew_certificate()  # renewing a valid certificate replaces the original
    assert new != original
    pbs.set_expired(True)
    pbs.set_expired(False)
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == new


def test_server_started_expired_serves_an_expired_certificate(
    start_pbs: Callable[..., PbsServer], fetch_certificate: Callable[..., bytes]
) -> None:
    server = start_pbs(expired=True)
    cert = x509.load_der_x509_certificate(fetch_certificate(server.address, server.port))
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)


def test_renew_certificate_changes_the_fingerprint_for_new_handshakes(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    old = pbs.fingerprint
    new = pbs.renew_certificate()
    assert new == pbs.fingerprint != old
    assert fingerprint_of_der(fetch_certificate(pbs.address, pbs.port)) == new
    cert = x509.load_pem_x509_certificate(pbs.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["pbs1.lab.example"]


def test_start_and_stop_are_idempotent_and_restart_keeps_the_port(
    pbs: PbsServer, fetch_certificate: Callable[..., bytes]
) -> None:
    port = pbs.port
    pbs.start()
    pbs.stop()
    pbs.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((pbs.address, port), timeout=1).close()
    pbs.start()
    assert pbs.port == port
    assert fetch_certificate(pbs.address, port)


def test_a_server_stopped_while_down_starts_down(pbs: PbsServer) -> None:
    pbs.set_mode("down")
    pbs.stop()
    pbs.start()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((pbs.address, pbs.port), timeout=1).close()
    assert "mode=down" in repr(pbs)


def test_unauthorized_answers_can_be_held_back_like_real_pbs(
    start_pbs: Callable[..., PbsServer], tmp_path: Path
) -> None:
    server = start_pbs(unauthorized_delay=0.3)
    started = time.monotonic()
    with trusting(server, tmp_path) as session:
        resp = session.get(f"{base(server)}/version", timeout=5)
    assert resp.status_code == 401
    assert time.monotonic() - started >= 0.3


def test_twenty_servers_serve_at_once(
    start_pbs: Callable[..., PbsServer], fetch_certificate: Callable[..., bytes]
) -> None:
    servers = [start_pbs(address=f"127.0.1.{i}", name=f"pbs{i}.lab.example") for i in range(1, 21)]
    fingerprints = {fingerprint_of_der(fetch_certificate(s.address, s.port)) for s in servers}
    assert fingerprints == {s.fingerprint for s in servers}


def test_secrets_stay_out_of_reprs(pbs: PbsServer) -> None:
    text = repr(pbs.spec) + repr(pbs)
    assert password(pbs) not in text
    assert token_secret(pbs) not in text
