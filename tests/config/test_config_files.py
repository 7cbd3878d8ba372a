"""Files a config names: secret files (#10 items 11, 14) and the PVE CA file (item 19).

Only regular files are read, bounded; a secret file must be private and hold one line; a CA file
must exist and hold a PEM certificate. Each is a config error at the line that names the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from config_helpers import Load, Problem, Problems, SecretFile, StorageText, assert_issue, secret_of

from pbs_compliance.config import ConfigError, ConfigIssue, load_config

PVE_TOKEN = "pbs_storages: []\npve:\n  token_id: a@pve!pbs\n  token_secret_file: {path}\n"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe nobody writes to: reading it the plain way blocks forever."""
    path = tmp_path / "secret.fifo"
    os.mkfifo(path)
    return path


def in_time(action: Callable[[], object], seconds: float = 20) -> object:
    """Run `action` in a thread; fail instead of hanging the suite when it blocks."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(action()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still blocked after {seconds} s"
    return result[0]


# -- item 11: regular files only ------------------------------------------------------------------


def test_a_password_file_that_is_a_fifo_is_an_error_at_once(
    storage_problem: Problem, fifo: Path
) -> None:
    issue = in_time(lambda: storage_problem(password_file=str(fifo)))

    assert isinstance(issue, ConfigIssue)
    assert_issue(issue, "pbs_storages[0].password_file", line=6)
    assert issue.message == (
        f"cannot read secret file {fifo}: it is a named pipe (FIFO), not a regular file"
    )
    assert issue.fix == "write the content into a regular file and name that file"


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/null", "a character device"), ("/dev/zero", "a character device")]
)
def test_a_password_file_that_is_a_device_is_an_error(
    storage_problem: Problem, device: str, kind: str
) -> None:
    issue = storage_problem(password_file=device)

    assert issue.message == f"cannot read secret file {device}: it is {kind}, not a regular file"


def test_a_password_file_of_dev_stdin_on_a_pipe_is_an_error_not_a_wait(
    storage_problem: Problem,
) -> None:
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)  # stdin is a pipe nobody writes to, as under a CI runner
    try:
        issue = in_time(lambda: storage_problem(password_file="/dev/stdin"))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)

    assert isinstance(issue, ConfigIssue)
    assert "it is a named pipe (FIFO), not a regular file" in issue.message


def test_a_pve_token_secret_file_that_is_a_fifo_is_an_error(problem: Problem, fifo: Path) -> None:
    issue = in_time(lambda: problem(PVE_TOKEN.format(path=fifo)))

    assert isinstance(issue, ConfigIssue)
    assert_issue(issue, "pve.token_secret_file", "named pipe (FIFO)")


def test_a_config_file_that_is_a_fifo_is_an_error_at_once(fifo: Path) -> None:
    def load() -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            load_config(fifo, environ={})
        return caught.value

    error = in_time(load)

    assert isinstance(error, ConfigError)
    (issue,) = error.issues
    assert issue.message == "cannot read: it is a named pipe (FIFO), not a regular file"


# -- item 14: private, one line -------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "who"), [(0o644, "everyone"), (0o604, "everyone")])
def test_a_world_readable_password_file_is_refused_with_the_chmod_fix(
    storage_problem: Problem, secret_file: SecretFile, mode: int, who: str
) -> None:
    path = secret_file("s3cret\n", mode=mode)

    issue = storage_problem(password_file=str(path))

    assert issue.field == "pbs_storages[0].password_file"
    assert issue.message.startswith(f"secret file {path} has mode {mode:04o}, so {who} can read it")
    assert "readable only by its owner" in issue.message
    assert issue.fix == f"chmod 600 {path}"
    assert "s3cret" not in str(issue)


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o660])
def test_a_group_readable_password_file_of_ones_own_is_refused(
    storage_problem: Problem, secret_file: SecretFile, mode: int
) -> None:
    path = secret_file("s3cret", mode=mode)  # owned by the user running the tests

    issue = storage_problem(password_file=str(path))

    assert f"has mode {mode:04o}, so the file's group can read it" in issue.message
    assert issue.fix == f"chmod 600 {path}"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_password_file_is_read(
    load: Load, storage_text: StorageText, secret_file: SecretFile, mode: int
) -> None:
    path = secret_file("s3cret\n", mode=mode)

    assert secret_of(load(storage_text(password_file=str(path)))) == "s3cret"


def test_a_too_open_pve_token_secret_file_is_refused_the_same_way(
    problem: Problem, secret_file: SecretFile
) -> None:
    path = secret_file("0f2a\n", name="token", mode=0o644)

    assert_issue(
        problem(PVE_TOKEN.format(path=path)), "pve.token_secret_file", fix=f"chmod 600 {path}"
    )


def test_the_chmod_fix_quotes_a_path_with_spaces(
    storage_problem: Problem, secret_file: SecretFile
) -> None:
    path = secret_file("s3cret", name="my secrets/pbs.pw", mode=0o644)

    issue = storage_problem(password_file=f"'{path}'")

    assert issue.fix == f"chmod 600 '{path}'"


@pytest.mark.parametrize(
    ("content", "lines"), [("s3cret\nother\n", 2), ("s3cret\n\n", 2), ("a\r\nb", 2)]
)
def test_a_password_file_of_several_lines_is_refused(
    storage_problem: Problem, secret_file: SecretFile, content: str, lines: int
) -> None:
    path = secret_file(content)

    issue = storage_problem(password_file=str(path))

    assert issue.message == (
        f"secret file {path} holds {lines} lines; it must hold only the secret, on one line"
    )
    assert issue.fix == "write just the secret into it (one final newline is fine)"
    assert "s3cret" not in str(issue)


@pytest.mark.parametrize("content", ["s3cret", "s3cret\n", "s3cret\r\n"])
def test_one_final_line_break_of_a_password_file_is_not_part_of_the_secret(
    load: Load, storage_text: StorageText, secret_file: SecretFile, content: str
) -> None:
    path = secret_file(content)

    assert secret_of(load(storage_text(password_file=str(path)))) == "s3cret"


def test_a_control_character_in_a_password_file_is_refused(
    storage_problem: Problem, secret_file: SecretFile
) -> None:
    path = secret_file("s3c\x00ret\n")

    issue = storage_problem(password_file=str(path))

    assert "contains the control character U+0000" in issue.message


@pytest.mark.parametrize("value", ["s3cret\n", "s3\ncret", "s3cret\r"])
def test_a_secret_from_the_environment_with_a_line_break_is_refused(
    storage_problem: Problem, value: str
) -> None:
    issue = storage_problem(password="${PBS_PW}", env={"PBS_PW": value})

    assert_issue(
        issue,
        "pbs_storages[0].password",
        message="the value of environment variable `PBS_PW` contains a line break",
    )
    assert "s3cret" not in str(issue)


# -- item 19: the PVE CA file ------------------------------------------------------------------


def pve_with_ca(ca_file: str) -> str:
    return f"pbs_storages: []\npve:\n  url: https://pve1.example:8006\n  ca_file: {ca_file}\n"


def test_a_missing_ca_file_is_an_error_at_its_line_with_the_fix(
    problem: Problem, tmp_path: Path
) -> None:
    issue = problem(pve_with_ca("/etc/pve/pve-root-ca.pem"))

    assert (issue.line, issue.column, issue.field) == (4, 12, "pve.ca_file")
    assert issue.message == (
        "cannot read CA file /etc/pve/pve-root-ca.pem: No such file or directory"
    )
    assert "/etc/pve/pve-root-ca.pem on any PVE node" in issue.fix
    assert "relative to the config file" in issue.fix


def test_a_relative_ca_file_is_looked_for_next_to_the_config_file(
    problem: Problem, load: Load, tmp_path: Path, ca_pem: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "ca.pem").write_bytes(ca_pem)  # in the working directory: not the one meant
    monkeypatch.chdir(elsewhere)

    issue = problem(pve_with_ca("ca.pem"))

    assert issue.message.startswith(f"cannot read CA file {tmp_path / 'ca.pem'}: ")
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    assert load(pve_with_ca("ca.pem")).pve.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    "content", [b"", b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END"]
)
def test_a_ca_file_without_a_pem_certificate_is_an_error(
    problem: Problem, tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "ca.pem").write_bytes(content)

    issue = problem(pve_with_ca("ca.pem"))

    assert issue.field == "pve.ca_file"
    assert issue.message == (
        f"cannot read CA file {tmp_path / 'ca.pem'}: it holds no PEM certificate "
        "(`-----BEGIN CERTIFICATE-----`)"
    )
    assert "/etc/pve/pve-root-ca.pem" in issue.fix


def test_a_ca_file_that_is_a_directory_or_a_fifo_is_an_error(
    problem: Problem, tmp_path: Path, fifo: Path
) -> None:
    assert "Is a directory" in problem(pve_with_ca(str(tmp_path))).message
    issue = in_time(lambda: problem(pve_with_ca(str(fifo))))
    assert isinstance(issue, ConfigIssue)
    assert "named pipe (FIFO)" in issue.message


def test_a_ca_bundle_with_several_certificates_and_text_is_accepted(
    load: Load, tmp_path: Path, ca_pem: bytes
) -> None:
    (tmp_path / "bundle.pem").write_bytes(b"# the lab CA\n" + ca_pem + b"\n# again\n" + ca_pem)

    assert load(pve_with_ca("bundle.pem")).pve.ca_file == tmp_path / "bundle.pem"


def test_a_bad_ca_file_does_not_hide_the_other_pve_errors(problems: Problems) -> None:
    text = pve_with_ca("/nonexistent/ca.pem") + "  timeout: 0\n"

    assert [issue.field for issue in problems(text)] == ["pve.ca_file", "pve.timeout"]
