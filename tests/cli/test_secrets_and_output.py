"""Secrets never reach any output; colour only on a terminal; the console script works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke, assert_shows, storage

from pbs_compliance import cli
from pbs_compliance.cli import Out, Output
from pbs_compliance.lab.runner import Lab

CANARY_TOKEN = "canary-token-5e1f0c2a9b"
CANARY_PASSWORD = "canary-password-77d3e1"


def test_no_command_ever_prints_a_secret(
    invoke: Invoke, lab: Lab, lab_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBS_CANARY_PASSWORD", CANARY_PASSWORD)

    def canary(data: dict[str, Any]) -> None:
        storage(data, "media")["password"] = "${PBS_CANARY_PASSWORD}"

    config = lab_config(lab, canary)
    pbs = lab.pbs["pbs1.lab.example"]
    runs = [
        ("validate", "--config", config, "--verbose"),
        ("status", "--config", config),
        ("apply", "--config", config, "--dry-run", "--rotate-secrets"),
        ("apply", "--config", config, "--rotate-secrets"),
        ("fingerprint", f"{pbs.address}:{pbs.port}", "--update", "archive", "--config", config),
    ]
    outputs = []
    for args in runs:
        for output in ("text", "json"):
            result = invoke(*args, "--output", output)
            assert result.exit_code in (0, 1), result.output
            outputs.append(result.stdout + result.stderr)
    secrets = [*lab.env.values(), CANARY_PASSWORD]
    for text in outputs:
        for secret in secrets:
            assert secret not in text
    assert any("password=***" in text for text in outputs)  # the rotation did happen


def test_a_refused_token_is_reported_without_the_token(
    invoke: Invoke,
    shared_lab: Lab,
    lab_config: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PBS_CANARY_TOKEN", CANARY_TOKEN)

    def wrong_token(data: dict[str, Any]) -> None:
        data["pve"]["token_secret"] = "${PBS_CANARY_TOKEN}"

    config = lab_config(shared_lab, wrong_token)
    for output in ("text", "json"):
        result = invoke("status", "--config", config, "--output", output)
        assert result.exit_code == 1
        assert CANARY_TOKEN not in result.stdout + result.stderr
    assert "401" in result.stdout


def test_the_console_script_runs_validate_with_json_on_stdout_only(
    shared_lab: Lab, use_lab: Callable[[Lab], Path]
) -> None:
    config = use_lab(shared_lab)
    done = subprocess.run(
        [Path(sys.executable).with_name("pbs"), "validate", "--config", config, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **shared_lab.env},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert done.stderr == ""


class FakeTty:
    """A stream that says it is a terminal and keeps what is written."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False)])
def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, coloured: bool
) -> None:
    if no_color is not None:
        monkeypatch.setenv("NO_COLOR", no_color)
    tty = FakeTty()
    monkeypatch.setattr(sys, "stdout", tty)
    out = Out.create(Output.text)
    out.print("every enabled storage is reachable as declared", style="green")
    assert ("\x1b[" in "".join(tty.parts)) is coloured


def test_no_arguments_shows_the_commands(invoke: Invoke) -> None:
    result = cli_help = invoke()
    assert result.exit_code in (0, 2)
    for command in ("validate", "status", "apply", "fingerprint", "demo", "lab"):
        assert command in cli_help.output


@pytest.mark.parametrize(
    "command",
    [("validate",), ("status",), ("apply",), ("fingerprint",), ("demo",), ("lab", "serve")],
)
def test_every_command_has_help_with_an_example(invoke: Invoke, command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert_shows(result.stdout, "Examples:", f"pbs {' '.join(command)}", "--output")


def test_an_unknown_option_is_a_usage_error(invoke: Invoke) -> None:
    assert invoke("validate", "--nope").exit_code == 2


def test_main_is_the_console_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["pbs", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 0
