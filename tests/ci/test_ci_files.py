"""The CI files users include or copy (ci/): valid for their CI, and running only real commands.

- The GitLab template validates against GitLab's published CI schema, as vendored (with GitLab's
  licence) by check-jsonschema; hidden jobs are free-form in that schema, so the concrete jobs are
  also validated with their `extends` merged in as GitLab merges them. Broken copies fail.
- Every `pbs ...` and `pytest .../checks/` command line in both files uses a subcommand and flags
  that the real CLI's `--help` shows.
- The Jenkinsfile has its cron trigger, credentials, `junit ... keepProperties: true` and the
  archived reports, and the report paths agree with the command that writes them.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import importlib.resources
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
GITLAB = REPO / "ci" / "pbs-compliance.gitlab-ci.yml"
JENKINS = REPO / "ci" / "Jenkinsfile"
EXAMPLE_CONFIG = REPO / "config" / "pbs-storage.example.yaml"
BIN = Path(sys.executable).parent
# check-jsonschema's command, called in-process (the console script `check-jsonschema`).
[_CHECK] = importlib.metadata.entry_points(group="console_scripts", name="check-jsonschema")
CHECK_JSONSCHEMA: click.Command = _CHECK.load()
JOBS = ("pbs-compliance-check", "pbs-compliance-plan", "pbs-compliance-apply")


# -- GitLab: the schema ------------------------------------------------------------------------


def gitlab_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    return doc


def _merge(base: Any, over: Any) -> Any:
    """GitLab's `extends` merge: hashes deep-merge, anything else (arrays too) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return copy.deepcopy(over)


def expand(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with every job's `extends` merged in (later parents win, the job wins last)."""

    @functools.cache
    def resolved(name: str) -> str:
        job = doc[name]
        parents = job.get("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged = _merge(merged, json.loads(resolved(parent)))
        own = {k: v for k, v in job.items() if k != "extends"}
        return json.dumps(_merge(merged, own))

    return {
        name: json.loads(resolved(name)) if isinstance(job, dict) else job
        for name, job in doc.items()
    }


def schema_errors(doc: dict[str, Any], tmp_path: Path, name: str) -> list[dict[str, Any]]:
    """check-jsonschema's verdict on `doc` against its vendored GitLab CI schema."""
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    args = ["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"]
    result = CliRunner().invoke(CHECK_JSONSCHEMA, [*args, "--output-format", "json", str(path)])
    verdict = json.loads(result.stdout)
    assert verdict.get("parse_errors", []) == [], verdict
    assert (result.exit_code == 0) == (verdict["status"] == "ok"), result.output
    errors: list[dict[str, Any]] = verdict["errors"]
    return errors


def test_the_schema_is_gitlabs_own_with_its_licence() -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("gitlab-ci.json").read_text(encoding="utf-8"))
    assert schema["$id"] == "https://gitlab.com/.gitlab-ci.yml"
    [licence_file] = Path(str(vendor)).rglob("LICENSE.gitlab")  # vendor/ or vendor/licenses/
    licence = licence_file.read_text(encoding="utf-8")
    assert "Copyright (c) 2011-present GitLab B.V." in licence
    assert '"MIT Expat" license' in licence


def test_the_gitlab_template_validates_as_written_and_with_extends_merged(tmp_path: Path) -> None:
    doc = gitlab_doc()
    assert schema_errors(doc, tmp_path, "as-written") == []
    expanded = expand(doc)
    assert schema_errors(expanded, tmp_path, "expanded") == []
    # The expansion is what makes the schema see the hidden jobs' rules, matrix and scripts.
    for job in JOBS:
        assert {"rules", "parallel", "image", "before_script", "script"} <= expanded[job].keys()


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


BROKEN = {
    # In a hidden job: the schema alone accepts anything there, the merged jobs do not.
    "a manual rule misspelt": (
        _set((".pbs-compliance-apply-rules", "rules", 1, "when"), "manually"),
        "$['pbs-compliance-apply'].rules[1]",
    ),
    "the matrix as a mapping, not a list": (
        _set((".pbs-compliance-clusters", "parallel", "matrix"), {"PBS_CONFIG": ["a.yaml"]}),
        "$['pbs-compliance-check'].parallel",
    ),
    "a rule with an unknown key": (
        _set((".pbs-compliance-rules", "rules", 0, "on"), "schedule"),
        "$['pbs-compliance-check'].rules[0]",
    ),
    # In a concrete job.
    "artifacts kept on an unknown condition": (
        _set(("pbs-compliance-check", "artifacts", "when"), "alway"),
        "$['pbs-compliance-check'].artifacts.when",
    ),
    "needs with a misspelt key": (
        _set(("pbs-compliance-apply", "needs", 0, "artifact"), False),
        "$['pbs-compliance-apply'].needs[0]",
    ),
    "a script that is a mapping": (
        _set(("pbs-compliance-plan", "script"), {"run": "pbs validate"}),
        "$['pbs-compliance-plan'].script",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_copy_of_the_template_fails_the_schema(case: str, tmp_path: Path) -> None:
    mutate, where = BROKEN[case]
    doc = gitlab_doc()
    mutate(doc)
    errors = schema_errors(expand(doc), tmp_path, "broken")
    assert errors, f"{case}: the schema accepted it"
    assert any(error["path"].startswith(where) for error in errors), errors


# -- GitLab: what the template does --------------------------------------------------------------


def test_the_check_job_runs_on_schedule_and_config_change_and_keeps_its_reports() -> None:
    check = expand(gitlab_doc())["pbs-compliance-check"]
    conditions = [rule.get("if", "") for rule in check["rules"]]
    assert '$CI_PIPELINE_SOURCE == "schedule"' in conditions
    on_change = [rule for rule in check["rules"] if "changes" in rule]
    assert [rule["changes"]["paths"] for rule in on_change] == [["config/**/*"]]
    assert all(rule.get("when", "on_success") == "on_success" for rule in check["rules"])
    artifacts = check["artifacts"]
    assert artifacts["when"] == "always"  # a failed check is when the reports matter most
    assert artifacts["paths"] == ["reports/"]
    run = _only(_commands(check["script"]), "pytest")
    assert artifacts["reports"]["junit"] == run.option("--junitxml") == "reports/junit.xml"
    assert run.option("--html") == "reports/report.html"
    assert run.option("--pbs-config") == "$PBS_CONFIG"


def test_every_job_runs_once_per_cluster_config() -> None:
    expanded = expand(gitlab_doc())
    matrices = [expanded[job]["parallel"]["matrix"] for job in JOBS]
    assert matrices == [[{"PBS_CONFIG": ["config/pbs-storage.yaml"]}]] * len(JOBS)
    for job in JOBS:
        uses = [c.option("--config") or c.option("--pbs-config") for c in _commands_of(job)]
        assert uses, job
        assert set(uses) == {"$PBS_CONFIG"}, (job, uses)


def test_apply_is_manual_on_the_default_branch_after_the_plans_with_the_write_token() -> None:
    expanded = expand(gitlab_doc())
    apply = expanded["pbs-compliance-apply"]
    first, *others = apply["rules"]
    assert first == {"if": "$CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH", "when": "never"}
    assert others
    assert all(rule["when"] == "manual" for rule in others)
    # Needs the plan jobs, not the check jobs: drift fails a check, and GitLab skips a job
    # whose needs failed - apply must stay available exactly then.
    assert apply["needs"] == [{"job": "pbs-compliance-plan", "artifacts": False}]
    assert apply["stage"] == "deploy"
    assert expanded["pbs-compliance-plan"]["stage"] == "test"
    script = "\n".join(apply["script"])
    assert 'PBS_COMPLIANCE_PVE_TOKEN_ID="$PBS_WRITE_TOKEN_ID"' in script
    assert 'PBS_COMPLIANCE_PVE_TOKEN_SECRET="$PBS_WRITE_TOKEN_SECRET"' in script
    assert [c.argv[:2] for c in _commands_of("pbs-compliance-apply")] == [["pbs", "apply"]]
    assert _commands_of("pbs-compliance-apply")[0].flags == ["--config"]  # nothing more


def test_the_plan_job_validates_then_dry_runs_and_tolerates_only_pending_changes() -> None:
    plan = expand(gitlab_doc())["pbs-compliance-plan"]
    assert [c.argv[:2] for c in _commands_of("pbs-compliance-plan")] == [
        ["pbs", "validate"],
        ["pbs", "apply"],
    ]
    dry_run = next(line for line in plan["script"] if "--dry-run" in line)
    assert dry_run.endswith("> reports/plan.txt || [ $? -eq 1 ]")
    assert plan["artifacts"]["paths"] == ["reports/plan.txt"]


# -- Both: every command is one the CLI has ------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    where: str

    @property
    def flags(self) -> list[str]:
        return [arg.split("=", 1)[0] for arg in self.argv[2:] if arg.startswith("-")]

    def option(self, flag: str) -> str | None:
        for i, arg in enumerate(self.argv):
            if arg == flag:
                return self.argv[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
        return None


SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
REDIRECTS = {">", ">>", "<", ">&", "<&", "2>", "2>&1"}


def shell_commands(script: str, where: str) -> Iterator[Command]:
    """The `pbs` and `pytest` commands in a shell script (variables left unexpanded)."""
    text = script.replace("\\\n", " ")
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in SEPARATORS:
                command = _program(words)
                if command:
                    yield Command(command, where)
                words = []
            else:
                words.append(token)


def _program(words: list[str]) -> list[str] | None:
    argv: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in REDIRECTS or re.fullmatch(r"\d?>+&?", word):
            skip = True
        elif not argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word):
            continue  # VAR=value before the command
        else:
            argv.append(word)
    if argv[:3] == ["python", "-m", "pytest"]:
        argv = ["pytest", *argv[3:]]
    if argv and Path(argv[0]).name in {"pbs", "pytest"}:
        return [Path(argv[0]).name, *argv[1:]]
    return None


def _commands(lines: list[str], where: str = "") -> list[Command]:
    return [c for line in lines for c in shell_commands(line, where)]


def _only(commands: list[Command], program: str) -> Command:
    [found] = [c for c in commands if c.argv[0] == program]
    return found


def _commands_of(job: str) -> list[Command]:
    return _commands(expand(gitlab_doc())[job]["script"], job)


def gitlab_commands() -> list[Command]:
    doc = gitlab_doc()
    found: list[Command] = []
    for name, job in doc.items():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                found += _commands(job.get(key, []), f"{GITLAB.name}: {name}.{key}")
    return found


JENKINS_SH = re.compile(r"\bsh\s+(?:'''(.*?)'''|'((?:[^'\\\n]|\\.)*)')", re.DOTALL)


def jenkins_commands() -> list[Command]:
    text = JENKINS.read_text(encoding="utf-8")
    found: list[Command] = []
    for match in JENKINS_SH.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found += shell_commands(match.group(1) or match.group(2), f"Jenkinsfile:{line}")
    return found


def _run_help(argv: list[str]) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=120, cwd=REPO, env=env
    )
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def cli_help() -> Callable[[str], str]:
    """`pbs SUB --help` and `pytest checks/ --help` (key "pytest"), each run once, from the repo."""

    @functools.cache
    def helptext(sub: str) -> str:
        if sub == "pytest":
            return _run_help([str(BIN / "pytest"), "checks/", "--help"])
        return _run_help([str(BIN / "pbs"), sub, "--help"])

    return helptext


def problems(command: Command, cli_help: Callable[[str], str]) -> list[str]:
    """What in the command the CLI does not have (empty when it all exists)."""
    name = command.argv[0]
    if name == "pytest":
        paths = [arg for arg in command.argv[1:] if not arg.startswith("-")]
        helptext = cli_help("pytest")
        found = [] if any(p.rstrip("/").endswith("checks") for p in paths) else ["no checks/"]
        flags = [arg.split("=", 1)[0] for arg in command.argv[1:] if arg.startswith("-")]
    else:
        helptext = cli_help(command.argv[1])
        if not helptext.startswith("exit 0"):
            return [f"no subcommand `pbs {command.argv[1]}`"]
        found, flags = [], command.flags
    # pytest's help shows one of the spellings of an option that differ only in hyphens
    # (`--junit-xml` for `--junitxml, --junit-xml`), and accepts each; pbs flags are exact.
    spelling = _unhyphenated if name == "pytest" else str
    shown = {spelling(option) for option in re.findall(r"(?<![\w-])-{1,2}\w[\w-]*", helptext)}
    found += [f"no flag {flag}" for flag in flags if spelling(flag) not in shown]
    return found


def _unhyphenated(option: str) -> str:
    """`--junit-xml` -> `--junitxml`."""
    return "--" + option[2:].replace("-", "") if option.startswith("--") else option


def test_the_help_texts_are_real(cli_help: Callable[[str], str]) -> None:
    assert cli_help("pytest").startswith("exit 0")
    assert "--pbs-config=PATH" in cli_help("pytest")  # the plugin is loaded for checks/
    assert "--dry-run" in cli_help("apply")


def test_every_command_in_the_ci_files_exists_in_the_cli(cli_help: Callable[[str], str]) -> None:
    commands = gitlab_commands() + jenkins_commands()
    seen = {(c.where.split(":")[0], *c.argv[:2]) for c in commands if c.argv[0] == "pbs"}
    assert seen == {
        (GITLAB.name, "pbs", "validate"),
        (GITLAB.name, "pbs", "apply"),
        ("Jenkinsfile", "pbs", "validate"),
        ("Jenkinsfile", "pbs", "apply"),
    }
    assert {c.where.split(":")[0] for c in commands if c.argv[0] == "pytest"} == {
        GITLAB.name,
        "Jenkinsfile",
    }
    wrong = {f"{c.where}: {shlex.join(c.argv)}": problems(c, cli_help) for c in commands}
    assert {k: v for k, v in wrong.items() if v} == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('pbs aply --config "$PBS_CONFIG"', ["no subcommand `pbs aply`"]),
        ("pbs apply --dryrun > plan.txt || [ $? -eq 1 ]", ["no flag --dryrun"]),
        ("X=1 .venv/bin/pbs validate -c a.yaml --verbos", ["no flag --verbos"]),
        ("pytest checks/ --pbs-conf=a.yaml --junitxml=j.xml", ["no flag --pbs-conf"]),
        ("python -m pytest tests/ --html=r.html", ["no checks/"]),
    ],
)
def test_a_command_the_cli_lacks_is_found(
    line: str, expected: list[str], cli_help: Callable[[str], str]
) -> None:
    [command] = list(shell_commands(line, "test"))
    assert problems(command, cli_help) == expected


# -- Jenkins -----------------------------------------------------------------------------------


def jenkinsfile() -> str:
    return JENKINS.read_text(encoding="utf-8")


def test_the_jenkinsfile_runs_daily_and_publishes_junit_with_properties_and_the_reports() -> None:
    text = jenkinsfile()
    triggers = re.search(r"triggers\s*\{\s*cron\('([^']+)'\)", text)
    assert triggers, "no cron trigger"
    assert len(triggers.group(1).split()) == 5  # minute hour day month weekday (H allowed)
    junit = re.findall(r"junit testResults: \"([^\"]+)\", keepProperties: true", text)
    archived = re.findall(r"archiveArtifacts artifacts: \"([^\"]+)\"", text)
    assert junit == ["reports/${CLUSTER}/junit.xml"]
    assert archived == ["reports/${CLUSTER}/report.html", "reports/${CLUSTER}/plan.txt"]
    # The paths the steps publish are the ones the commands write.
    run = _only(jenkins_commands(), "pytest")
    assert run.option("--junitxml") == junit[0].replace("${CLUSTER}", "$CLUSTER")
    assert run.option("--html") == archived[0].replace("${CLUSTER}", "$CLUSTER")
    assert run.option("--pbs-config") == "config/$CLUSTER.yaml"


def test_the_jenkinsfile_binds_every_secret_the_example_config_references() -> None:
    text = jenkinsfile()
    bound = set(re.findall(r"^\s*(\w+)\s*=\s*credentials\('[\w-]+'\)", text, re.MULTILINE))
    referenced: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            referenced.update(re.findall(r"\$\{(\w+)\}", node))

    walk(yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8")))
    assert referenced, "the example config references no secret"
    assert referenced <= bound, referenced - bound
    assert "PBS_WRITE_TOKEN" in bound  # the apply stage's own token
    # Groovy never interpolates a secret: every shell step is single-quoted.
    assert not re.search(r'\bsh\s+"', text)


def test_the_jenkinsfile_braces_and_parentheses_balance() -> None:
    text = jenkinsfile()
    text = re.sub(r"'''.*?'''|'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"", "''", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    stack: list[str] = []
    pairs = {")": "(", "}": "{", "]": "["}
    for char in text:
        if char in "({[":
            stack.append(char)
        elif char in pairs:
            assert stack, f"{char} closes nothing"
            assert stack.pop() == pairs[char], f"{char} closes another bracket"
    assert stack == []
