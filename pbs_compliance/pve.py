"""Our thin layer over proxmoxer: a few calls, a few exception types, secrets never shown.

proxmoxer raises `ResourceException` with PVE's message in the HTTP reason phrase, and `requests`
raises transport errors whose text can contain the request URL - and `scan/pbs` carries the PBS
password in its query string. Everything is mapped here, once, to `PveError` subclasses whose
messages are PVE's own words with secrets redacted; nothing else in the project branches on
error text or sees a raw client exception.

No exception leaves this layer carrying a secret in its frames (what `pytest -l` shows): every
exception of a call, expected or not - a library's warning turned into an error included - is
mapped after its handler has ended, so the new `PveError` has neither a context nor the
library's frames (whose locals hold the `Authorization` header and the `scan/pbs` query), and
secrets travel as `SecretStr` until the request is built inside the call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from proxmoxer import AuthenticationError, ProxmoxAPI, ResourceException
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from pbs_compliance.config.model import PveSettings

T = TypeVar("T")
_DIGEST_CONFLICT = "detected modified configuration"
_SECRET_QUERY_RE = re.compile(r"(password|secret|ticket|token)=[^&\s)\"]*", re.IGNORECASE)


def redact_query(text: str) -> str:
    """Mask secret query values (`scan/pbs` sends the PBS password in its query string)."""
    return _SECRET_QUERY_RE.sub(lambda m: f"{m.group(1)}=***", text)


class _RedactQuery(logging.Filter):
    """urllib3 logs each request line at DEBUG: keep secrets out of `--log-file` output."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = redact_query(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def _redact_http_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactQuery) for f in logger.filters):
        logger.addFilter(_RedactQuery())


# Connections to PVE kept open for reuse: one per thread of a gathering (`evidence.MAX_WORKERS`
# runs that many reads at once). requests keeps 10 and closes the rest after each answer, so at
# a thousand storages every later read paid a new TLS handshake (and urllib3 logged "Connection
# pool is full" into the reports of failed cases).
MAX_CONNECTIONS = 32


class PveError(Exception):
    """A PVE API call failed; `str()` is safe to show (PVE's message, secrets redacted)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        self.message = message
        super().__init__(message if status is None else f"HTTP {status}: {message}")


class PveUnavailable(PveError):
    """PVE could not be reached (connection refused, timeout, TLS failure)."""


class PveAuthError(PveError):
    """Credentials were refused (401) - the run cannot read anything."""


class PvePermissionError(PveError):
    """Authenticated, but the token or user lacks a privilege (403)."""


class PveDigestConflict(PveError):
    """Another writer changed storage.cfg between our read and our write: re-read and retry."""


class PveNotFound(PveError):
    """The storage (or node) does not exist."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """`https://host:8006`, `host:8006` or `host` -> host and port (default 8006)."""
        parts = urlsplit(url if "://" in url else f"https://{url}")
        return cls(parts.hostname or url, parts.port or 8006)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


class PveClient:
    """The PVE calls this project makes, each with a timeout and mapped errors."""

    def __init__(self, settings: PveSettings, secrets: Iterable[str] = ()) -> None:
        _redact_http_logs()  # this client's requests are the ones that carry secrets
        if not settings.url:
            raise PveError("no PVE URL configured (pve.url, --pve-url or PBS_COMPLIANCE_PVE_URL)")
        self.endpoint = Endpoint.parse(settings.url)
        verify: bool | str = settings.verify_ssl
        if settings.verify_ssl and settings.ca_file is not None:
            verify = str(settings.ca_file)
        self._secrets = [s for s in secrets if s]
        # What the environment says for this URL (HTTPS_PROXY/NO_PROXY, REQUESTS_CA_BUNDLE when
        # verifying without a ca_file), read once: requests reads it again on every call by
        # walking the whole environment, and with a password variable per storage that walk was
        # most of a 1,000-storage run's time. The session below then leaves the environment be.
        env = requests.Session().merge_environment_settings(
            str(self.endpoint), {}, None, verify, None
        )
        kwargs: dict[str, Any] = {
            "port": self.endpoint.port,
            "verify_ssl": env["verify"],
            "timeout": settings.timeout,
            "proxies": dict(env["proxies"]),
        }
        # The credential stays a SecretStr; it is unwrapped only inside the call that logs in.
        self.token_id: str | None = None
        self._credential: tuple[str, SecretStr]
        if settings.token_id and settings.token_secret:
            self.token_id = settings.token_id
            user, _, token_name = settings.token_id.partition("!")
            kwargs.update(user=user, token_name=token_name)
            self._credential = ("token_value", settings.token_secret)
        elif settings.user and settings.password:
            kwargs.update(user=settings.user)
            self._credential = ("password", settings.password)
        else:
            raise PveError(
                "no PVE credentials: set pve.token_id + pve.token_secret (an API token), or "
                "pve.user + pve.password"
            )
        self._secrets.append(self._credential[1].get_secret_value())
        self._kwargs = kwargs
        self._api: Any = None

    def __repr__(self) -> str:
        return f"PveClient({self.endpoint})"

    @property
    def api(self) -> Any:
        """The proxmoxer handle, created on first use (password login happens here)."""
        if self._api is None:
            key, secret = self._credential
            api = self._call(
                lambda: ProxmoxAPI(
                    self.endpoint.host, **self._kwargs, **{key: secret.get_secret_value()}
                )
            )
            # proxmoxer keeps its requests session in `_store` (no public handle); the settings
            # the environment gave were read above and passed in. Should a later proxmoxer keep
            # it elsewhere, requests just goes on reading them per call: slower, same answers.
            session = getattr(api, "_store", {}).get("session")
            if isinstance(session, requests.Session):
                session.trust_env = False
                adapter = HTTPAdapter(pool_maxsize=MAX_CONNECTIONS)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
            self._api = api
        return self._api

    # -- reads --------------------------------------------------------------------------------

    def storages(self) -> list[dict[str, Any]]:
        """`GET /storage`: every entry of storage.cfg with its options (one read per run)."""
        return list(self._call(lambda: self.api.storage.get()))

    def storage(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(lambda: self.api.storage(name).get())
        return result

    def cluster_name(self) -> str | None:
        """`GET /cluster/status`: the cluster's name (None for a single node, which has no
        cluster entry there)."""
        items = self._call(lambda: self.api.cluster.status.get())
        names = [str(i.get("name")) for i in items if i.get("type") == "cluster" and i.get("name")]
        return names[0] if names else None

    def nodes(self) -> list[str]:
        items = self._call(lambda: self.api.nodes.get())
        return sorted(str(item["node"]) for item in items)

    def node_storages(self, node: str, storage: str | None = None) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/storage`: that node's own view (enabled, active); with `storage`,
        only that entry (the node then activates just that one, not every store it has)."""
        params = {} if storage is None else {"storage": storage}
        return list(self._call(lambda: self.api.nodes(node).storage.get(**params)))

    def resources(self) -> list[dict[str, Any]]:
        """`GET /cluster/resources`: guests (name, node), nodes (online) and where each storage
        is available, in one read (what the backup health checks need of the cluster)."""
        return list(self._call(lambda: self.api.cluster.resources.get()))

    def backup_content(self, node: str, storage: str) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/storage/{storage}/content?content=backup`: the backups as PVE
        sees them (it asks the PBS with the entry's own credentials and namespace)."""
        return list(
            self._call(lambda: self.api.nodes(node).storage(storage).content.get(content="backup"))
        )

    def scan_pbs(
        self,
        node: str,
        server: str,
        username: str,
        password: str | SecretStr,
        fingerprint: str | None,
        port: int,
    ) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/scan/pbs`: can that node log in with this password?

        The password goes into the query string only inside the call (see the module doc)."""
        secret = password if isinstance(password, SecretStr) else SecretStr(password)
        self._remember(secret)
        params: dict[str, Any] = {"server": server, "username": username, "port": port}
        if fingerprint:
            params["fingerprint"] = fingerprint
        return list(
            self._call(
                lambda: self.api.nodes(node).scan.pbs.get(
                    **params, password=secret.get_secret_value()
                )
            )
        )

    # -- writes -------------------------------------------------------------------------------

    def create(self, params: Mapping[str, str], password: str | SecretStr | None = None) -> None:
        data = dict(params)
        secret = _secret(password)
        if secret is not None:
            self._remember(secret)
        self._call(lambda: self.api.storage.post(**data, **_password_field(secret)))

    def update(
        self,
        name: str,
        params: Mapping[str, str],
        delete: Iterable[str] = (),
        digest: str | None = None,
        password: str | SecretStr | None = None,
    ) -> None:
        data = dict(params)
        removed = ",".join(delete)
        if removed:
            data["delete"] = removed
        if digest:
            data["digest"] = digest
        secret = _secret(password)
        if secret is not None:
            self._remember(secret)
        self._call(lambda: self.api.storage(name).put(**data, **_password_field(secret)))

    def delete(self, name: str) -> None:
        self._call(lambda: self.api.storage(name).delete())

    # -- error mapping ------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_query(text)

    def _remember(self, secret: SecretStr) -> None:
        value = secret.get_secret_value()
        if value and value not in self._secrets:
            self._secrets.append(value)

    def _call(self, fn: Callable[[], T]) -> T:
        # Mapped inside the handler, raised after it: the PveError then has no __context__, and
        # its traceback starts here, without the library frames that hold the secrets.
        try:
            return fn()
        except Exception as exc:  # every failure becomes a PveError
            error = self._translate(exc)
        raise error

    def _translate(self, exc: Exception) -> PveError:
        if isinstance(exc, PveError):  # from a nested call (the login): a fresh copy, no frames
            return type(exc)(exc.message, exc.status)
        if isinstance(exc, ResourceException):
            return self._map(exc)
        if isinstance(exc, AuthenticationError):
            return PveAuthError(
                f"PVE at {self.endpoint} refused the login for {self._kwargs.get('user')}: check "
                "the user (user@realm) and its password (pve.password)",
                401,
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return PveUnavailable(
                f"TLS verification of {self.endpoint} failed ({self.redact(_root(exc))}); "
                "set pve.ca_file to the cluster's CA (or, knowingly, pve.verify_ssl: false)"
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return PveUnavailable(
                f"PVE at {self.endpoint} did not answer within {self._kwargs['timeout']} s"
            )
        if isinstance(exc, requests.exceptions.RequestException):
            return PveUnavailable(f"cannot reach PVE at {self.endpoint}: {self.redact(_root(exc))}")
        if isinstance(exc, Warning):
            return PveUnavailable(
                f"a library warning was raised as an error while talking to PVE at "
                f"{self.endpoint}, so the request was abandoned: {type(exc).__name__}: "
                f"{self.redact(str(exc))} (something turns warnings into errors: -W or "
                "PYTHONWARNINGS; the compliance run itself never does)"
            )
        return PveError(
            f"unexpected error talking to PVE at {self.endpoint}: {type(exc).__name__}: "
            f"{self.redact(str(exc))}"
        )

    def _map(self, exc: ResourceException) -> PveError:
        status = int(exc.status_code)
        message = self.redact(str(exc.content or exc.status_message)).strip()
        if exc.errors and isinstance(exc.errors, dict) and exc.errors.get("errors") is None:
            details = "; ".join(f"{k}: {str(v).strip()}" for k, v in sorted(exc.errors.items()))
            message = f"{message} ({self.redact(details)})"
        if status == 401:
            return PveAuthError(f"{message or 'authentication failed'} - {self._refused()}", status)
        if status == 403:
            return PvePermissionError(message, status)
        if _DIGEST_CONFLICT in message:
            return PveDigestConflict(message, status)
        if "does not exist" in message or "No such storage" in message:
            return PveNotFound(message, status)
        return PveError(message, status)

    def _refused(self) -> str:
        """Who was refused and what to check (PVE answers a bad token with a bare 401)."""
        if self.token_id is None:
            user = self._kwargs.get("user")
            return (
                f"PVE at {self.endpoint} refused the login of {user}: check the user "
                "(user@realm) and its password (pve.password)"
            )
        return (
            f"PVE at {self.endpoint} refused the API token {self.token_id}: check that the id is "
            "exactly user@realm!name as `pveum user token list USER` shows it, that the secret "
            "(pve.token_secret or PBS_COMPLIANCE_PVE_TOKEN_SECRET) is the one shown when the "
            "token was created, and that the token has not expired or been removed. (A valid "
            "token with privilege separation that lacks a permission gets HTTP 403, not 401.)"
        )


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


def _password_field(secret: SecretStr | None) -> dict[str, str]:
    """`{"password": ...}` for a request body, built only inside the call that sends it."""
    return {} if secret is None else {"password": secret.get_secret_value()}


def _root(exc: BaseException) -> str:
    """The innermost cause's text: "Connection refused" beats three layers of pool wrappers."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return match.group(1) if match else text
