"""Our PVE error layer against the lab's real HTTPS API: few exception types, no secret shown."""

from __future__ import annotations

import logging
import socket
import threading
import traceback

import pytest
from pydantic import SecretStr

from pbs_compliance.config.model import PveSettings
from pbs_compliance.lab.runner import READONLY_TOKEN_ID, TOKEN_ID, Lab
from pbs_compliance.pve import (
    Endpoint,
    PveAuthError,
    PveClient,
    PveDigestConflict,
    PveError,
    PveNotFound,
    PvePermissionError,
    PveUnavailable,
)


def settings(lab: Lab, **overrides: object) -> PveSettings:
    values: dict[str, object] = {
        "url": lab.url,
        "token_id": TOKEN_ID,
        "token_secret": SecretStr(lab.token_secret),
        "ca_file": lab.ca_file,
        "timeout": 2.0,
    }
    values.update(overrides)
    return PveSettings.model_validate(values)


def test_endpoints_parse_with_and_without_scheme_and_port() -> None:
    assert Endpoint.parse("https://pve1:8443") == Endpoint("pve1", 8443)
    assert Endpoint.parse("pve1") == Endpoint("pve1", 8006)
    assert str(Endpoint("::1", 8006)) == "https://[::1]:8006"


def test_reads_and_writes_work_with_a_token_and_with_a_login(shared_lab: Lab) -> None:
    client = PveClient(settings(shared_lab))
    assert {"homelab-backup", "archive"} <= {e["storage"] for e in client.storages()}
    assert client.nodes() == ["pve1", "pve2", "pve3"]
    assert client.storage("archive")["type"] == "pbs"
    login = PveClient(
        settings(
            shared_lab,
            token_id=None,
            token_secret=None,
            user="root@pam",
            password=SecretStr(shared_lab.password),
        )
    )
    assert any(v["storage"] == "archive" for v in login.node_storages("pve1"))


def test_errors_map_to_a_few_types_with_pves_own_words(lab: Lab) -> None:
    client = PveClient(settings(lab))
    with pytest.raises(PveNotFound, match="storage 'nope' does not exist"):
        client.storage("nope")
    digest = client.storages()[0]["digest"]
    client.update("archive", {"max-protected-backups": "3"}, digest=digest)
    with pytest.raises(PveDigestConflict, match="detected modified configuration"):
        client.update("archive", {"max-protected-backups": "4"}, digest=digest)
    with pytest.raises(PveError, match="fingerprint") as schema:
        client.update("archive", {"fingerprint": "nope"})
    assert schema.value.status == 400
    readonly = PveClient(
        settings(lab, token_id=READONLY_TOKEN_ID, token_secret=SecretStr(lab.readonly_token_secret))
    )
    with pytest.raises(PvePermissionError, match=r"Datastore\.Allocate"):
        readonly.delete("archive")
    wrong = PveClient(settings(lab, token_secret=SecretStr("canary-wrong-secret")))
    with pytest.raises(PveAuthError) as denied:
        wrong.storages()
    assert "canary-wrong-secret" not in str(denied.value)


def test_a_refused_token_names_the_token_and_what_to_check(shared_lab: Lab) -> None:
    wrong = PveClient(settings(shared_lab, token_secret=SecretStr("canary-wrong-secret")))

    with pytest.raises(PveAuthError) as denied:
        wrong.storages()

    assert str(denied.value) == (
        f"HTTP 401: Authentication failed! - PVE at {wrong.endpoint} refused the API token "
        f"{TOKEN_ID}: check that the id is exactly user@realm!name as `pveum user token list "
        "USER` shows it, that the secret (pve.token_secret or PBS_COMPLIANCE_PVE_TOKEN_SECRET) "
        "is the one shown when the token was created, and that the token has not expired or "
        "been removed. (A valid token with privilege separation that lacks a permission gets "
        "HTTP 403, not 401.)"
    )
    assert "canary-wrong-secret" not in repr(wrong) + str(denied.value)


def test_an_unexpected_failure_inside_the_http_library_leaves_no_frame_with_a_secret(
    shared_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the library raises - here a warning turned into an error, as under -W error -
    becomes a PveError raised outside the handler: no context, no library frames, whose locals
    (`headers`, the `scan/pbs` query) hold the token and the password."""
    import urllib3

    def urlopen(self: object, method: str, url: str, *args: object, **kwargs: object) -> None:
        raise urllib3.exceptions.InsecureRequestWarning(f"injected for {method}")

    client = PveClient(settings(shared_lab))
    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)

    with pytest.raises(PveError) as exc:  # the password as the evidence layer passes it
        client.scan_pbs(
            "pve1", "pbs1.lab.example", "root@pam", SecretStr("canary-scan-pw"), None, 8007
        )

    assert str(exc.value).startswith(
        f"a library warning was raised as an error while talking to PVE at {client.endpoint}, "
        "so the request was abandoned: InsecureRequestWarning: injected for GET"
    )
    assert exc.value.__context__ is None
    assert exc.value.__cause__ is None
    frames = [frame for frame, _ in traceback.walk_tb(exc.value.__traceback__)]
    assert [f.f_code.co_name for f in frames][1:] == ["scan_pbs", "_call"]
    shown = " ".join(repr(v) for f in frames for v in f.f_locals.values())
    assert "canary-scan-pw" not in shown
    assert shared_lab.token_secret not in shown


def test_a_failed_login_is_an_auth_error_without_the_password(shared_lab: Lab) -> None:
    client = PveClient(
        settings(
            shared_lab,
            token_id=None,
            token_secret=None,
            user="root@pam",
            password=SecretStr("canary-bad-password"),
        )
    )
    with pytest.raises(PveAuthError) as exc:
        client.storages()
    assert "canary-bad-password" not in str(exc.value)


def test_transport_failures_are_unavailable_and_say_how_to_fix_tls(shared_lab: Lab) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed = spare.getsockname()[1]
    refused = PveClient(settings(shared_lab, url=f"https://127.0.0.1:{closed}"))
    with pytest.raises(PveUnavailable, match="cannot reach PVE"):
        refused.storages()
    untrusted = PveClient(settings(shared_lab, ca_file=None))
    with pytest.raises(PveUnavailable, match="ca_file"):
        untrusted.storages()


def test_a_slow_pve_is_a_timeout_not_a_hang(lab: Lab) -> None:
    assert lab.pve is not None
    lab.pve.faults.set(latency=1.0)
    client = PveClient(settings(lab, timeout=0.3))
    with pytest.raises(PveUnavailable, match=r"did not answer within 0\.3 s"):
        client.storages()


def test_a_scan_error_never_shows_the_password_sent_in_the_query(shared_lab: Lab) -> None:
    client = PveClient(settings(shared_lab))
    with pytest.raises(PveError) as exc:
        client.scan_pbs("pve1", "pbs1.lab.example", "root@pam", "canary-scan-pw", None, 1)
    assert "canary-scan-pw" not in str(exc.value)
    assert client.redact("url?password=canary-scan-pw&x=1") == "url?password=***&x=1"


def test_a_client_needs_a_url_and_a_credential() -> None:
    with pytest.raises(PveError, match="no PVE URL"):
        PveClient(PveSettings())
    with pytest.raises(PveError, match="no PVE credentials"):
        PveClient(PveSettings(url="https://pve1:8006"))


def test_a_gathering_s_threads_each_keep_their_connection_to_pve(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pbs_compliance.evidence import MAX_WORKERS

    assert lab.pve is not None
    # 32 TLS handshakes at once with a loaded lab under `-n 2`: more than the usual 2 s
    client = PveClient(settings(lab, timeout=15.0))
    client.nodes()  # the login, and the first connection
    lab.pve.faults.set(latency=0.3)  # each answer takes long enough for all reads to overlap
    barrier = threading.Barrier(MAX_WORKERS)

    def read(_: int) -> list[str]:
        barrier.wait(timeout=10)  # all threads reading at once: one connection each
        return client.nodes()

    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        for _ in range(2):
            caplog.clear()
            answers = list(pool.map(read, range(MAX_WORKERS)))
            assert answers == [["pve1", "pve2", "pve3"]] * MAX_WORKERS
            opened = [r for r in caplog.records if "Starting new HTTPS connection" in r.message]
            dropped = [r for r in caplog.records if "Connection pool is full" in r.message]
            assert not dropped
    # The second round found every connection of the first one kept for it.
    assert opened == []
