"""`pbs lab serve`: a foreground lab that writes its files when ready and stops on a signal."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from cli_helpers import Invoke, as_json, assert_shows, port_8007_taken

from pbs_compliance.cli import lab as cli_lab
from pbs_compliance.lab.pve_faults import FAULT_HELP
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin
from pbs_compliance.lab.signals import catching_signals, wait_for_signal

PBS = shutil.which("pbs") or str(Path(sys.executable).with_name("pbs"))


def ephemeral_spec(path: Path) -> Path:
    path.write_text(yaml.safe_dump(builtin().with_ephemeral_ports().model_dump()), "utf-8")
    return path


def serve(tmp_path: Path, state: Path) -> subprocess.Popen[str]:
    """`pbs lab serve` of the builtin lab on ephemeral ports, as a separate process."""
    spec = ephemeral_spec(tmp_path / "spec.yaml")
    return subprocess.Popen(
        [PBS, "lab", "serve", "--spec", spec, "--state-dir", state],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} not written within {timeout} s"
        time.sleep(0.05)


def refused(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return True
    return False


def test_lab_serve_writes_its_files_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = serve(tmp_path, state)
    try:
        wait_for(state / "lab.json", process)
        lab = json.loads((state / "lab.json").read_text(encoding="utf-8"))
        assert (state / "pbs-storage.yaml").is_file()
        assert (state / "lab.env").stat().st_mode & 0o777 == 0o600
        ports = [(s["address"], s["port"]) for s in lab["pbs_servers"]]
        assert not any(refused(address, port) for address, port in ports)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert_shows(
        stdout,
        f"set -a; . {state / 'lab.env'}; set +a",
        f"pytest checks/ --pbs-config {state / 'pbs-storage.yaml'}",
        "SIGTERM: lab stopped",
    )
    assert all(refused(address, port) for address, port in ports)
    for secret in lab["pve"]["token_secret"], lab["pve"]["password"]:
        assert secret not in stdout + stderr


def test_the_builtin_lab_on_a_taken_port_8007_is_a_clear_error(tmp_path: Path) -> None:
    with port_8007_taken():
        done = subprocess.run(
            [PBS, "lab", "serve", "--state-dir", tmp_path],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert_shows(
        done.stderr,
        "the lab cannot start: PBS server pbs1.lab.example cannot listen on",
        "127.0.0.11:8007",
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "lab.json").exists()


def test_lab_serve_in_process_announces_in_text_and_json(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def signal_arrives() -> str:
        seen.append((tmp_path / "s" / "pbs-storage.yaml").is_file())
        return "SIGINT"

    monkeypatch.setattr(cli_lab, "catching_signals", lambda: contextlib.nullcontext(signal_arrives))
    spec = ephemeral_spec(tmp_path / "spec.yaml")
    text = invoke("lab", "serve", "--spec", spec, "--state-dir", tmp_path / "s")
    assert text.exit_code == 0, text.output
    assert_shows(
        text.stdout,
        "lab running: PVE https://127.0.0.1:",
        "PBS          pbs2.lab.example on 127.0.0.12:",
        "SIGINT: lab stopped",
    )
    result = invoke("lab", "serve", "--spec", spec, "--state-dir", tmp_path / "s", "-o", "json")
    assert result.exit_code == 0
    ready, stopped = _documents(result.stdout)
    assert ready["event"] == "ready"
    assert ready["files"]["lab.env"] == str(tmp_path / "s" / "lab.env")
    assert stopped == {"event": "stopped", "signal": "SIGINT"}
    assert seen == [True, True]


def _documents(text: str) -> list[dict[str, object]]:
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while index < len(text.rstrip()):
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
        while index < len(text) and text[index].isspace():
            index += 1
    return documents


def test_a_signal_before_the_wait_is_kept_and_ends_the_wait_at_once() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with catching_signals() as wait:
        os.kill(os.getpid(), signal.SIGTERM)  # while the lab would still be starting
        assert wait() == "SIGTERM"  # alive, and told which signal came
    assert signal.getsignal(signal.SIGTERM) is previous


def test_the_signal_wait_returns_the_signal_that_arrived() -> None:
    pid = os.getpid()
    timer = threading.Timer(0.2, os.kill, (pid, signal.SIGTERM))
    previous = signal.getsignal(signal.SIGTERM)
    timer.start()
    try:
        assert wait_for_signal() == "SIGTERM"
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGTERM) is previous


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nodes: [\n", "is not valid YAML"),
        ("nodes: []\n", "is invalid: nodes"),
        (None, "cannot read the lab spec"),
    ],
)
def test_a_bad_spec_is_a_usage_error(
    invoke: Invoke, tmp_path: Path, content: str | None, message: str
) -> None:
    spec = tmp_path / "spec.yaml"
    if content is not None:
        spec.write_text(content, encoding="utf-8")
    result = invoke("lab", "serve", "--spec", spec, "--state-dir", tmp_path / "s")
    assert result.exit_code == 2
    assert message in result.stderr
    data = as_json(invoke("lab", "serve", "--spec", spec, "--state-dir", tmp_path, "-o", "json"))
    assert data["error"] == "usage"


# -- pbs lab fault: where --state-dir goes, what a mistake says (#10 items 18 and 22) ----------


def test_state_dir_works_before_the_fault_sub_command_as_the_hint_puts_it_and_after_it(
    invoke: Invoke, lab: Lab
) -> None:
    pbs = lab.pbs["pbs1.lab.example"]
    before = invoke(
        "lab", "fault", "--state-dir", lab.state_dir, "pbs", pbs.spec.name, "--mode", "down"
    )
    assert before.exit_code == 0, before.output
    assert f"{pbs.spec.name}: mode=down" in before.stdout
    assert pbs.mode == "down"
    after = invoke(
        "lab", "fault", "pbs", pbs.spec.name, "--mode", "up", "--state-dir", lab.state_dir
    )
    assert after.exit_code == 0, after.output
    assert pbs.mode == "up"
    assert lab.pve is not None
    dns = invoke("lab", "fault", "--state-dir", lab.state_dir, "dns", "servfail", "-o", "json")
    assert as_json(dns) == {"ok": True, "result": {"fault": "servfail"}}
    pve = invoke("lab", "fault", "--state-dir", lab.state_dir, "pve", "latency=0.01")
    assert pve.exit_code == 0, pve.output
    assert lab.pve.faults.settings.latency == 0.01
    same = invoke(
        "lab", "fault", "--state-dir", lab.state_dir, "pve", "--clear", "--state-dir", lab.state_dir
    )
    assert same.exit_code == 0, same.output
    assert lab.pve.faults.settings.latency == 0.0


def test_two_different_state_dirs_are_a_usage_error(
    invoke: Invoke, lab: Lab, tmp_path: Path
) -> None:
    served = lab.pbs["pbs1.lab.example"].fingerprint
    result = invoke(
        "lab", "fault", "--state-dir", tmp_path, "pbs", "pbs1.lab.example", "--renew",
        "--state-dir", lab.state_dir,
    )  # fmt: skip
    assert result.exit_code == 2
    assert (
        f"--state-dir given twice, {tmp_path} before the sub-command and {lab.state_dir} after it"
        in result.stderr
    )
    assert lab.pbs["pbs1.lab.example"].fingerprint == served  # nothing was sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("pbs", "pbs9.lab.example", "--renew"),
            "no PBS server named 'pbs9.lab.example' in this lab (its PBS servers: "
            "pbs1.lab.example, pbs2.lab.example, pbs3.lab.example)",
        ),
        (
            ("dns", "servfail", "--node", "pve9"),
            "no node named 'pve9' in this lab (its nodes: pve1, pve2, pve3)",
        ),
        (("pve", "latency=abc"), 'invalid PVE fault setting: latency="abc": Input should be'),
        (("pve", "nonsense=1"), "unknown PVE fault setting(s): nonsense; the settings are latency"),
    ],
)
def test_a_fault_mistake_says_what_is_wrong_and_the_valid_choices(
    invoke: Invoke, shared_lab: Lab, args: tuple[str, ...], message: str
) -> None:
    result = invoke("lab", "fault", "--state-dir", shared_lab.state_dir, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"pbs: the lab refused the fault: {message}")
    assert "admin route" not in result.stderr
    assert "'pve9'\n" not in result.stderr


def test_pve_fault_help_lists_every_key_with_its_meaning(invoke: Invoke) -> None:
    result = invoke("lab", "fault", "pve", "--help")
    assert result.exit_code == 0
    lines = [line.split() for line in result.stdout.splitlines()]
    for key, meaning in FAULT_HELP.items():
        assert [key, *meaning.split()] in lines, key


def test_every_hint_lab_serve_prints_works_as_printed(tmp_path: Path) -> None:
    """The commands `pbs lab serve` tells a person to run, run verbatim from another shell."""
    state = tmp_path / "state"
    process = serve(tmp_path, state)
    hints: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("stop with Ctrl-C"):
                break
            if line.strip().startswith(("pbs lab fault", "pbs fingerprint")):
                hints.append(line.split("#", 1)[0].strip())
        lab = json.loads((state / "lab.json").read_text(encoding="utf-8"))
        secrets = dict(
            line.split("=", 1) for line in (state / "lab.env").read_text("utf-8").splitlines()
        )
        env = {**os.environ, **secrets, "NO_COLOR": "1"}  # after `set -a; . lab.env; set +a`
        assert [hint.split()[:3] for hint in hints] == [
            ["pbs", "fingerprint", "pbs1.lab.example"],
            ["pbs", "lab", "fault"],
            ["pbs", "lab", "fault"],
            ["pbs", "lab", "fault"],
        ]
        for hint in hints:
            done = subprocess.run(
                [PBS, *shlex.split(hint)[1:]],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env=env,
            )
            assert done.returncode == 0, (hint, done.stderr)
        pbs1 = next(s for s in lab["pbs_servers"] if s["name"] == "pbs1.lab.example")
        assert refused(pbs1["address"], pbs1["port"])  # the `--mode down` hint took effect
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_no_expired_serves_the_original_certificate_again(invoke: Invoke, lab: Lab) -> None:
    pbs = lab.pbs["pbs3.lab.example"]
    original = pbs.fingerprint
    where = ("--state-dir", lab.state_dir)
    expired = as_json(
        invoke("lab", "fault", *where, "pbs", pbs.spec.name, "--expired", "-o", "json")
    )
    assert expired["result"]["fingerprint"] != original
    undone = as_json(
        invoke("lab", "fault", *where, "pbs", pbs.spec.name, "--no-expired", "-o", "json")
    )
    assert undone["result"]["fingerprint"] == original
    result = invoke("fingerprint", f"{pbs.address}:{pbs.port}", "-o", "json")
    assert as_json(result)["fingerprint"] == original  # what the socket serves
    assert as_json(result)["expired"] is False


def test_a_restart_on_taken_ports_says_so_when_it_announces_itself(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        cli_lab, "catching_signals", lambda: contextlib.nullcontext(lambda: "SIGINT")
    )
    spec = ephemeral_spec(tmp_path / "spec.yaml")
    state = tmp_path / "s"
    first = invoke("lab", "serve", "--spec", spec, "--state-dir", state, "-o", "json")
    assert first.exit_code == 0, first.output
    ready = _documents(first.stdout)[0]
    assert ready["notes"] == []
    pve_port = int(str(ready["pve"]).rpartition(":")[2])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", pve_port))
        holder.listen(1)
        again = invoke("lab", "serve", "--spec", spec, "--state-dir", state)
    assert again.exit_code == 0, again.output
    assert (
        f"note: the PVE API listened on port {pve_port} last run, but that port is taken now"
        in again.stdout
    )
    assert "Configs saved from the last run need the new port (pve.url in lab.json)" in again.stdout
