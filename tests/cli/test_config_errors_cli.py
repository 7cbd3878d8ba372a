"""Config errors found by the loader end every entry point the same way (#10 items 11, 12, 19).

`pbs validate`, `pbs status`, `pbs apply` and `pytest checks/` each exit 2 with the file:line of
the problem and its fix - no traceback, no hang, no collection errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Invoke, assert_shows
from spec_builders import storage_yaml

from pbs_compliance.lab.runner import Lab

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"
PBS = Path(sys.executable).parent / "pbs"
STORAGE = storage_yaml()


def pbs(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed `pbs` command in a process of its own: a hang fails, it does not block."""
    return subprocess.run(
        [str(PBS), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def run_checks(pytester: pytest.Pytester, config: Path) -> pytest.RunResult:
    """`pytest checks/ --pbs-config CONFIG` in a process of its own."""
    shutil.copytree(CHECKS_DIR, pytester.path / "checks", ignore=shutil.ignore_patterns("__py*"))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--pbs-config={config}", "checks", timeout=120
    )


def literal(text: str) -> str:
    """`text` as an fnmatch pattern that matches only itself (`[0]` is a character class)."""
    return text.replace("[", "[[]")


def assert_checks_stopped(result: pytest.RunResult, *lines: str) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 2, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert "collected" not in output
    result.stdout.fnmatch_lines(
        [*lines, "*pbs-compliance: the configuration is invalid, nothing was checked*"]
    )


# -- item 11: a password file that is a FIFO ------------------------------------------------------


@pytest.fixture
def fifo_config(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pbs.pw")
    config = tmp_path / "pbs-storage.yaml"
    config.write_text(STORAGE + "    password_file: pbs.pw\n", encoding="utf-8")
    return config


def fifo_line(config: Path) -> str:
    return (
        f"{config}:6:20: pbs_storages[0].password_file: cannot read secret file "
        f"{config.parent / 'pbs.pw'}: it is a named pipe (FIFO), not a regular file"
    )


def test_validate_with_a_fifo_password_file_exits_2_at_once(fifo_config: Path) -> None:
    result = pbs("validate", "--config", fifo_config)

    assert result.returncode == 2, result.stderr
    assert_shows(
        result.stderr,
        fifo_line(fifo_config),
        "fix: write the content into a regular file and name that file",
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_pytest_checks_with_a_fifo_password_file_exits_2_at_once(
    pytester: pytest.Pytester, fifo_config: Path
) -> None:
    result = run_checks(pytester, fifo_config)

    assert_checks_stopped(result, f"*{literal(fifo_line(fifo_config))}")


# -- item 12: a 5,000-digit port, a 20 MB file ----------------------------------------------------

PORT_MESSAGE = (
    "pbs_storages[0].port: a number of 5,000 characters is longer than any setting takes "
    "(at most 32)"
)


@pytest.fixture
def long_port_config(tmp_path: Path) -> Path:
    config = tmp_path / "pbs-storage.yaml"
    config.write_text(STORAGE + f"    port: {'9' * 5000}\n", encoding="utf-8")
    return config


def test_validate_with_a_5000_digit_port_exits_2_with_its_line(
    invoke: Invoke, long_port_config: Path
) -> None:
    result = invoke("validate", "--config", long_port_config)

    assert result.exit_code == 2, result.output
    assert f"{long_port_config}:6:11: {PORT_MESSAGE}" in result.stderr
    assert "Traceback" not in result.output


def test_pytest_checks_with_a_5000_digit_port_exits_2_not_internalerror(
    pytester: pytest.Pytester, long_port_config: Path
) -> None:
    result = run_checks(pytester, long_port_config)

    assert_checks_stopped(result, f"*{long_port_config}:6:11: {literal(PORT_MESSAGE)}")


@pytest.fixture
def huge_config(tmp_path: Path) -> Path:
    config = tmp_path / "pbs-storage.yaml"
    entry = STORAGE.removeprefix("pbs_storages:\n")
    with config.open("w", encoding="utf-8") as out:  # 20 MB of plain, valid entries
        out.write("pbs_storages:\n")
        for index in range(20_000_000 // len(entry)):
            out.write(entry.replace("pbs1", f"pbs{index}"))
    return config


def test_validate_rejects_a_20_mb_config_up_front_with_a_true_message(
    invoke: Invoke, huge_config: Path
) -> None:
    result = invoke("validate", "--config", huge_config, "--output", "json")

    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["error"] == "config"
    (issue,) = document["issues"]
    assert issue["message"].startswith("the file is 19.")
    assert "a config file may be at most 2.0 MiB" in issue["message"]
    assert "alias" not in issue["message"] + issue["fix"]


def test_pytest_checks_rejects_a_20_mb_config_up_front(
    pytester: pytest.Pytester, huge_config: Path
) -> None:
    result = run_checks(pytester, huge_config)

    assert_checks_stopped(result, f"*{huge_config}: the file is 19.* MiB; a config file may be*")


# -- item 19: a pve.ca_file that does not exist ---------------------------------------------------


@pytest.fixture
def moved_lab_config(
    shared_lab: Lab, use_lab: Callable[[Lab], Path], tmp_path: Path
) -> tuple[Path, int]:
    """The lab's own config copied elsewhere: its relative `ca_file: ca.pem` now names nothing.

    Returns the copy and the line of `ca_file:` in it.
    """
    copy = tmp_path / "elsewhere" / "pbs-storage.yaml"
    copy.parent.mkdir()
    shutil.copyfile(use_lab(shared_lab), copy)
    lines = copy.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("ca_file:"))
    assert lines[line - 1].strip() == "ca_file: ca.pem"
    return copy, line


def ca_message(copy: Path, line: int) -> str:
    return (
        f"{copy}:{line}:12: pve.ca_file: cannot read CA file {copy.parent / 'ca.pem'}: "
        "No such file or directory"
    )


@pytest.mark.parametrize("command", ["validate", "status", "apply"])
def test_a_moved_lab_config_is_a_config_error_for_every_command(
    invoke: Invoke, moved_lab_config: tuple[Path, int], command: str
) -> None:
    copy, line = moved_lab_config

    result = invoke(command, "--config", copy)

    assert result.exit_code == 2, result.output
    assert ca_message(copy, line) in result.stderr
    assert "fix: copy the CA certificate of the PVE cluster (/etc/pve/pve-root-ca.pem" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert "TLS CA certificate bundle" not in result.output
    assert result.stdout == ""


def test_status_json_with_a_missing_ca_file_is_one_json_error_document(
    invoke: Invoke, moved_lab_config: tuple[Path, int]
) -> None:
    copy, line = moved_lab_config

    result = invoke("status", "--config", copy, "--output", "json")

    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["error"] == "config"
    (issue,) = document["issues"]
    assert (issue["file"], issue["line"], issue["field"]) == (str(copy), line, "pve.ca_file")
    assert "No such file or directory" in issue["message"]
    assert "/etc/pve/pve-root-ca.pem" in issue["fix"]


def test_pytest_checks_with_a_missing_ca_file_stops_before_collection(
    pytester: pytest.Pytester, moved_lab_config: tuple[Path, int]
) -> None:
    copy, line = moved_lab_config

    result = run_checks(pytester, copy)

    assert_checks_stopped(result, f"*{ca_message(copy, line)}")
    assert "TLS CA certificate bundle" not in result.stdout.str()


def test_the_lab_config_in_place_still_loads(
    invoke: Invoke, shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    result = invoke("status", "--config", use_lab(shared_lab), "--output", "json")

    assert result.exit_code == 0, result.output
