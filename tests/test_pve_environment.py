"""The PVE client reads the environment's HTTP settings once, when it is made, and obeys them.

requests would read HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE again on every call by walking
the whole environment; with a password variable per storage that walk dominated large runs. The
answers must stay the environment's: a proxy is used, NO_PROXY bypasses it, a CA bundle from
the environment verifies PVE - as read when the client was made.
"""

from __future__ import annotations

import socket

import pytest
from pydantic import SecretStr

from pbs_compliance.config.model import PveSettings
from pbs_compliance.lab.runner import TOKEN_ID, Lab
from pbs_compliance.pve import PveClient, PveUnavailable

NODES = ["pve1", "pve2", "pve3"]
VARIABLES = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")
BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES + BUNDLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def dead_proxy() -> str:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def client(lab: Lab, ca_file: object = "lab") -> PveClient:
    settings = PveSettings.model_validate(
        {
            "url": lab.url,
            "token_id": TOKEN_ID,
            "token_secret": SecretStr(lab.token_secret),
            "ca_file": lab.ca_file if ca_file == "lab" else ca_file,
            "timeout": 2.0,
        }
    )
    return PveClient(settings)


def test_a_proxy_in_the_environment_when_the_client_is_made_is_used(
    shared_lab: Lab, env: pytest.MonkeyPatch, dead_proxy: str
) -> None:
    env.setenv("HTTPS_PROXY", dead_proxy)
    through_proxy = client(shared_lab)
    env.delenv("HTTPS_PROXY")  # too late: read when the client was made
    with pytest.raises(PveUnavailable) as caught:
        through_proxy.nodes()
    assert str(through_proxy.endpoint) in caught.value.message


def test_a_proxy_set_after_the_client_was_made_is_not_used(
    shared_lab: Lab, env: pytest.MonkeyPatch, dead_proxy: str
) -> None:
    direct = client(shared_lab)
    env.setenv("HTTPS_PROXY", dead_proxy)
    assert direct.nodes() == NODES
    assert direct.nodes() == NODES  # and on every later call


def test_no_proxy_bypasses_the_proxy_for_the_pve_host(
    shared_lab: Lab, env: pytest.MonkeyPatch, dead_proxy: str
) -> None:
    env.setenv("HTTPS_PROXY", dead_proxy)
    env.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert client(shared_lab).nodes() == NODES


def test_a_ca_bundle_from_the_environment_verifies_pve_without_a_ca_file(
    shared_lab: Lab, env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PveUnavailable, match=r"TLS verification of .* failed"):
        client(shared_lab, ca_file=None).nodes()
    env.setenv("REQUESTS_CA_BUNDLE", str(shared_lab.ca_file))
    assert client(shared_lab, ca_file=None).nodes() == NODES
