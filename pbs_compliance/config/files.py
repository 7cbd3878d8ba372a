"""Read the files a config names (the config itself, secret files, the PVE CA) safely.

Only regular files are read, and never more than a limit: a FIFO or `/dev/stdin` would block
forever, `/dev/zero` would fill the memory. A FIFO is opened non-blocking so that even the `open`
returns at once. Secret files must be private, as ssh demands of a private key.
"""

from __future__ import annotations

import errno
import os
import shlex
import ssl
import stat
from pathlib import Path

# A config of 1,000 storages with every field is about 350 KB; 2 MiB is several thousand.
MAX_CONFIG_BYTES = 2 * 1024 * 1024
MAX_SECRET_BYTES = 4096
# The system bundle of every public CA is about 220 KB.
MAX_CA_BYTES = 4 * 1024 * 1024

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class FileProblem(Exception):
    """A file cannot be used; `describe` words it for a config issue."""

    def __init__(self, reason: str, fix: str, errno: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
        self.errno = errno  # set when the file could not even be opened

    def describe(self, what: str, path: Path) -> str:
        """Worded like `cannot read secret file /x: No such file or directory`."""
        return f"cannot read {what} {path}: {self.reason}"


class TooLarge(FileProblem):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes", "check that the path names the right file")
        self.size = size
        self.limit = limit

    def describe(self, what: str, path: Path) -> str:
        limit = f"{self.limit} bytes" if self.limit < 1024 * 1024 else size_text(self.limit)
        return f"{what} {path} is larger than {limit} ({size_text(self.size)})"


class TooOpen(FileProblem):
    def __init__(self, path: Path, mode: int, who: str) -> None:
        super().__init__(
            f"its mode {mode:04o} lets {who} read it", f"chmod 600 {shlex.quote(str(path))}"
        )
        self.mode = mode
        self.who = who

    def describe(self, what: str, path: Path) -> str:
        return (
            f"{what} {path} has mode {self.mode:04o}, so {self.who} can read it; a secret file "
            "must be readable only by its owner (mode 0600, as ssh demands of a private key)"
        )


def size_text(size: int) -> str:
    """1536 -> '1.5 KiB'; exact bytes below 1 KiB."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def read_regular(path: Path, limit: int, *, private: bool = False) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them, else `FileProblem`.

    `private`: refuse a file that other users may read (see `check_private`).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileProblem(exc.strerror or str(exc), _open_fix(exc), exc.errno) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileProblem(os.strerror(errno.EISDIR), "name the file, not its directory")
        if not stat.S_ISREG(info.st_mode):
            kind = next((text for test, text in _KINDS if test(info.st_mode)), "a special file")
            raise FileProblem(
                f"it is {kind}, not a regular file",
                "write the content into a regular file and name that file",
            )
        if private:
            check_private(path, info)
        if info.st_size > limit:
            raise TooLarge(info.st_size, limit)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, limit + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while we read it
            raise TooLarge(total, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_private(path: Path, info: os.stat_result) -> None:
    """Refuse a secret file others can read, as ssh refuses a private key that is too open.

    Like ssh: a file of our own must give group and others no access at all (0600 or 0400). A
    file owned by another user (say root, shared with a service through its group) may be
    group-readable, but a world-readable secret is refused whoever owns it.
    """
    mode = stat.S_IMODE(info.st_mode)
    own = info.st_uid == os.geteuid()
    if (own and mode & 0o077) or mode & 0o007:
        who = "everyone" if mode & 0o007 else "the file's group"
        raise TooOpen(path, mode, who)


def check_ca_file(path: Path) -> None:
    """`path` is a readable PEM file with at least one certificate, as requests will load it."""
    read_regular(path, MAX_CA_BYTES)  # regular, bounded: OpenSSL below would block on a FIFO
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        # What requests does with `verify=<path>`: the same OpenSSL call, the same verdict.
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError):
        certificates = 0
    else:
        certificates = context.cert_store_stats().get("x509", 0)
    if not certificates:
        raise FileProblem(
            "it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            "name the PEM file of the CA that signed PVE's certificate "
            "(/etc/pve/pve-root-ca.pem on any PVE node)",
        )


def _open_fix(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "check the path (a relative path is relative to the config file)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "give the user running pbs-compliance read access to it"
    return "check the path"
