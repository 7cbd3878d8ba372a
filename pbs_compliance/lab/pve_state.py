"""The emulator's storage.cfg on disk, changed only under one lock like PVE's cluster lock.

Layout mirrors `/etc/pve`: `<state_dir>/storage.cfg` and `<state_dir>/priv/storage/<id>.pw`
(`.enc`, `.master.pem`), secret files mode 0600, so a lab can be stopped and started again,
or a hand-written storage.cfg dropped in before start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from pbs_compliance.lab.storage import StorageSecrets, StorageState

__all__ = ["StorageStore"]

T = TypeVar("T")

_PW, _ENC, _MASTER = ".pw", ".enc", ".master.pem"


class StorageStore:
    """Holds the current `StorageState`; every write is computed and persisted under the lock."""

    def __init__(
        self,
        state_dir: Path,
        initial_cfg: str | None = None,
        initial_passwords: Mapping[str, str] | None = None,
    ) -> None:
        self._dir = state_dir
        self._priv = state_dir / "priv" / "storage"
        self._lock = threading.RLock()
        self._dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self._dir / "storage.cfg"
        if cfg_path.exists():
            text: str | None = cfg_path.read_text(encoding="utf-8")
            secrets = self._load_secrets()
            self._state = StorageState.from_text(text, secrets)
        else:
            secrets = {k: StorageSecrets(password=v) for k, v in (initial_passwords or {}).items()}
            self._state = StorageState.from_text(initial_cfg, secrets)
            if initial_cfg is not None:
                _atomic_write(cfg_path, initial_cfg.encode())
            self._write_secrets({}, self._state.secrets)

    @property
    def state(self) -> StorageState:
        """The current state; a consistent snapshot (states are immutable)."""
        return self._state

    @property
    def cfg_path(self) -> Path:
        return self._dir / "storage.cfg"

    def secret_path(self, storage_id: str, kind: str = _PW) -> Path:
        return self._priv / f"{storage_id}{kind}"

    def write(self, change: Callable[[StorageState], tuple[StorageState, T]]) -> T:
        """Run `change` under the lock and persist its new state before anyone else reads it."""
        with self._lock:
            old = self._state
            new, result = change(old)
            if new is not old:
                _atomic_write(self.cfg_path, new.config.text.encode())
                self._write_secrets(old.secrets, new.secrets)
                self._state = new
            return result

    def _load_secrets(self) -> dict[str, StorageSecrets]:
        found: dict[str, StorageSecrets] = {}
        if not self._priv.is_dir():
            return found
        for path in sorted(self._priv.iterdir()):
            name = path.name
            for suffix in (_MASTER, _PW, _ENC):
                if name.endswith(suffix):
                    sid = name[: -len(suffix)]
                    cur = found.get(sid, StorageSecrets())
                    data = path.read_bytes()
                    if suffix == _PW:
                        # `file_read_firstline`: the first line without its newline.
                        line = data.decode("utf-8", "replace").split("\n", 1)[0]
                        cur = StorageSecrets(line, cur.encryption_key, cur.master_pubkey)
                    elif suffix == _ENC:
                        key = data.decode("utf-8", "replace").removesuffix("\n")
                        cur = StorageSecrets(cur.password, key, cur.master_pubkey)
                    else:
                        cur = StorageSecrets(cur.password, cur.encryption_key, data[:-1])
                    found[sid] = cur
                    break
        return found

    def _write_secrets(
        self, old: Mapping[str, StorageSecrets], new: Mapping[str, StorageSecrets]
    ) -> None:
        for sid in set(old) | set(new):
            before = old.get(sid, StorageSecrets())
            after = new.get(sid, StorageSecrets())
            pairs: list[tuple[str, bytes | None, bytes | None]] = [
                (_PW, _enc(before.password), _enc(after.password)),
                (_ENC, _enc(before.encryption_key), _enc(after.encryption_key)),
                (_MASTER, _raw(before.master_pubkey), _raw(after.master_pubkey)),
            ]
            for suffix, was, now in pairs:
                if was == now and (now is None or self.secret_path(sid, suffix).exists()):
                    continue
                path = self.secret_path(sid, suffix)
                if now is None:
                    path.unlink(missing_ok=True)
                else:
                    self._priv.mkdir(parents=True, exist_ok=True)
                    _atomic_write(path, now, mode=0o600)


def _enc(text: str | None) -> bytes | None:
    return None if text is None else f"{text}\n".encode()


def _raw(data: bytes | None) -> bytes | None:
    return None if data is None else data + b"\n"


def _atomic_write(path: Path, data: bytes, mode: int = 0o640) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, mode)
        handle.write(data)
    os.replace(tmp, path)
