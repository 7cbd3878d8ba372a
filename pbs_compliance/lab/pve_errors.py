"""The one error type of the PVE emulator: what PVE's `die`/`raise` would put on the wire."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PveError", "param_error"]


class PveError(Exception):
    """An API failure with PVE's status and message.

    `message` is the full text PVE sends (usually newline-terminated); its first line becomes
    the HTTP reason phrase, which is all proxmoxer shows. `errors` carries the per-parameter
    messages of a 400 schema failure.
    """

    def __init__(self, status: int, message: str, errors: Mapping[str, str] | None = None) -> None:
        if not message.endswith("\n"):
            message += "\n"
        super().__init__(message.rstrip("\n"))
        self.status = status
        self.message = message
        self.errors: dict[str, str] | None = dict(errors) if errors is not None else None

    @property
    def reason(self) -> str:
        """The HTTP reason phrase: the message's first line."""
        return self.message.split("\n", 1)[0]

    def __repr__(self) -> str:
        return f"PveError({self.status}, {self.reason!r}, errors={self.errors!r})"


def param_error(errors: Mapping[str, str]) -> PveError:
    """PVE's 400 for a failed parameter check (`PVE::JSONSchema::validate`)."""
    return PveError(400, "Parameter verification failed.", errors)
