"""Our thin layer over proxmoxer: a few calls, a few exception types, secrets never shown.

proxmoxer raises `ResourceException` with PVE's message in the HTTP reason phrase, and `requests`
raises transport errors whose text can contain the request URL - and `scan/pbs` carries the PBS
password in its query string. Everything is mapped here, once, to `PveError` subclasses whose
messages are PVE's own words with secrets redacted; nothing else in the project branches on
error text or sees a raw client exception.
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
        kwargs: dict[str, Any] = {
            "port": self.endpoint.port,
            "verify_ssl": verify,
            "timeout": settings.timeout,
        }
        if settings.token_id and settings.token_secret:
            user, _, token_name = settings.token_id.partition("!")
            secret = settings.token_secret.get_secret_value()
            self._secrets.append(secret)
            kwargs.update(user=user, token_name=token_name, token_value=secret)
        elif settings.user and settings.password:
            secret = settings.password.get_secret_value()
            self._secrets.append(secret)
            kwargs.update(user=settings.user, password=secret)
        else:
            raise PveError(
                "no PVE credentials: set pve.token_id + pve.token_secret (an API token), or "
                "pve.user + pve.password"
            )
        self._kwargs = kwargs
        self._api: Any = None

    @property
    def api(self) -> Any:
        """The proxmoxer handle, created on first use (password login happens here)."""
        if self._api is None:
            self._api = self._call(lambda: ProxmoxAPI(self.endpoint.host, **self._kwargs))
        return self._api

    # -- reads --------------------------------------------------------------------------------

    def storages(self) -> list[dict[str, Any]]:
        """`GET /storage`: every entry of storage.cfg with its options (one read per run)."""
        return list(self._call(lambda: self.api.storage.get()))

    def storage(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(lambda: self.api.storage(name).get())
        return result

    def nodes(self) -> list[str]:
        items = self._call(lambda: self.api.nodes.get())
        return sorted(str(item["node"]) for item in items)

    def node_storages(self, node: str, storage: str | None = None) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/storage`: that node's own view (enabled, active); with `storage`,
        only that entry (the node then activates just that one, not every store it has)."""
        params = {} if storage is None else {"storage": storage}
        return list(self._call(lambda: self.api.nodes(node).storage.get(**params)))

    def scan_pbs(
        self,
        node: str,
        server: str,
        username: str,
        password: str,
        fingerprint: str | None,
        port: int,
    ) -> list[dict[str, Any]]:
        """`GET /nodes/{node}/scan/pbs`: can that node log in with this password?"""
        self._secrets.append(password)
        params = {"server": server, "username": username, "password": password, "port": port}
        if fingerprint:
            params["fingerprint"] = fingerprint
        return list(self._call(lambda: self.api.nodes(node).scan.pbs.get(**params)))

    # -- writes -------------------------------------------------------------------------------

    def create(self, params: Mapping[str, str], password: str | None = None) -> None:
        data = dict(params)
        if password is not None:
            self._secrets.append(password)
            data["password"] = password
        self._call(lambda: self.api.storage.post(**data))

    def update(
        self,
        name: str,
        params: Mapping[str, str],
        delete: Iterable[str] = (),
        digest: str | None = None,
        password: str | None = None,
    ) -> None:
        data = dict(params)
        removed = ",".join(delete)
        if removed:
            data["delete"] = removed
        if digest:
            data["digest"] = digest
        if password is not None:
            self._secrets.append(password)
            data["password"] = password
        self._call(lambda: self.api.storage(name).put(**data))

    def delete(self, name: str) -> None:
        self._call(lambda: self.api.storage(name).delete())

    # -- error mapping ------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_query(text)

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ResourceException as exc:
            raise self._map(exc) from None
        except AuthenticationError:
            raise PveAuthError(
                f"PVE at {self.endpoint} refused the login for {self._kwargs.get('user')}", 401
            ) from None
        except requests.exceptions.SSLError as exc:
            raise PveUnavailable(
                f"TLS verification of {self.endpoint} failed ({self.redact(_root(exc))}); "
                "set pve.ca_file to the cluster's CA (or, knowingly, pve.verify_ssl: false)"
            ) from None
        except requests.exceptions.Timeout:
            raise PveUnavailable(
                f"PVE at {self.endpoint} did not answer within {self._kwargs['timeout']} s"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise PveUnavailable(
                f"cannot reach PVE at {self.endpoint}: {self.redact(_root(exc))}"
            ) from None

    def _map(self, exc: ResourceException) -> PveError:
        status = int(exc.status_code)
        message = self.redact(str(exc.content or exc.status_message)).strip()
        if exc.errors and isinstance(exc.errors, dict) and exc.errors.get("errors") is None:
            details = "; ".join(f"{k}: {str(v).strip()}" for k, v in sorted(exc.errors.items()))
            message = f"{message} ({self.redact(details)})"
        if status == 401:
            return PveAuthError(message or "authentication failed", status)
        if status == 403:
            return PvePermissionError(message, status)
        if _DIGEST_CONFLICT in message:
            return PveDigestConflict(message, status)
        if "does not exist" in message or "No such storage" in message:
            return PveNotFound(message, status)
        return PveError(message, status)


def _root(exc: BaseException) -> str:
    """The innermost cause's text: "Connection refused" beats three layers of pool wrappers."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return match.group(1) if match else text
