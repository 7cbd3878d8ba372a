"""Builders the unit tests share: a valid declared storage with a test file's own defaults, the
entry PVE lists for a storage (GET /storage), and the certificate a PBS serves.

Importable from every test directory (`pythonpath = ["tests"]` in pyproject.toml). Each test file
keeps its own names and values (`spec = storage_builder(name=..., ...)`), so what a test asserts
stays readable where it is asserted; only the building is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from pbs_compliance.config import StorageSpec
from pbs_compliance.essence import to_api_params
from pbs_compliance.probes.tls import CertificateFacts

FP = ":".join(["AB"] * 32)
# The fingerprint of the sample storage entry PVE stored (config/pbs-storage.example.yaml).
SEED_FP = (
    "54:52:3A:D2:43:F0:80:66:E3:D0:BB:D6:0B:28:50:9F:"
    "C6:1C:73:BD:45:EA:D0:38:BC:25:54:EE:A4:D5:D1:54"
)
# The digest PVE lists with its storage.cfg (`listed`).
DIGEST = "0123456789abcdef0123456789abcdef01234567"
# What every builder starts from unless a test file names its own values.
STORAGE = {"name": "pbs1", "server": "pbs.example", "datastore": "store1", "fingerprint": FP}


def storage_yaml(*more_lines: str) -> str:
    """A whole config file with one minimal valid storage `pbs1` (5 lines, the entry on line 2),
    then `more_lines` as they are."""
    lines = [
        "pbs_storages:",
        "  - name: pbs1",
        "    server: pbs.example",
        "    datastore: store1",
        f"    fingerprint: '{SEED_FP}'",
        *more_lines,
    ]
    return "\n".join(lines) + "\n"


def storage_builder(*, strict: bool | None = None, **defaults: Any) -> Callable[..., StorageSpec]:
    """`spec(**changes)` for one test file: a validated StorageSpec of STORAGE, then `defaults`,
    then each call's `changes` (any of them may replace any other); `strict=False` validates in
    pydantic's lax mode instead of the model's strict one."""
    base = STORAGE | defaults

    def spec(**changes: Any) -> StorageSpec:
        return StorageSpec.model_validate(base | changes, strict=strict)

    return spec


def edited(entry: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`entry` with `changes` applied as a hand edit would: a value of None removes the key."""
    merged = dict(entry) | dict(changes)
    return {key: value for key, value in merged.items() if value is not None}


def entry_builder(**defaults: Any) -> Callable[..., dict[str, Any]]:
    """`entry(**options)` for one test file: a pbs entry as GET /storage lists it (PVE adds
    `shared` and a `digest`) of `defaults`, then each call's `options`; None leaves a key out."""
    base = {"type": "pbs", "content": "backup", "shared": 1, "digest": "0" * 40} | defaults

    def entry(**options: Any) -> dict[str, Any]:
        return edited(base, options)

    return entry


def listed(declared: StorageSpec, **changes: Any) -> dict[str, Any]:
    """What PVE lists for an entry created from `declared` (with DIGEST, and a flag as the number
    1, as PVE's GET answers it), then edited by hand (`changes`; None removes the option)."""
    created = dict(to_api_params(declared)) | {"shared": 1, "digest": DIGEST}
    if "disable" in created:
        created["disable"] = 1
    return edited(created, changes)


def certificate(
    not_before: dt.datetime,
    not_after: dt.datetime,
    fingerprint: str = FP,
    *,
    issuer: str = "CN=pbs1.example",
) -> CertificateFacts:
    """The certificate pbs1.example serves."""
    return CertificateFacts(
        subject="CN=pbs1.example",
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        serial=1,
        fingerprint=fingerprint,
        sans=("DNS:pbs1.example",),
    )
