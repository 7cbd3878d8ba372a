"""`make mutation`: mutmut over the pure modules, each mutated alone against its own tests.

Coverage says a line ran; a mutation score says whether the tests notice when the line is
wrong. For each module below, mutmut (version 3) copies the tree into its own work directory
under `mutants/` (ignored by git), mutates only that module, runs only that module's tests
against every mutant, one mutant at a time, and this script prints the table:

    module | mutants | killed | survived | no tests | score

A mutant counts as killed when a test failed or timed out on it; "no tests" are mutants in
functions none of the module's tests reach. The score is killed / mutants. The run fails
(exit 1) when a module scores below `THRESHOLD`.

    .venv/bin/python tests/mutation/run.py                 # every module
    .venv/bin/python tests/mutation/run.py verdicts plan   # some of them (by short name)
    .venv/bin/python tests/mutation/run.py --survivors verdicts   # also each surviving diff

mutmut's settings shared by every module are the `[tool.mutmut]` table of pyproject.toml;
this script adds the per-module ones (which file to mutate, which tests to run).
Not collected by pytest (its name does not start with `test_`).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "mutants"
THRESHOLD = 90.0
# The work directory is a copy of the tree (tests read files such as config/*.yaml) without
# what is large, generated or private to this checkout; mutmut then copies it once more into
# its own `mutants/` (with the per-module pyproject.toml this script writes).
NOT_COPIED = frozenset({".git", ".venv", "mutants", "reports", "build", "dist", ".lab"})
IGNORED = shutil.ignore_patterns("__pycache__", ".*_cache", "*.egg-info", ".hypothesis")


@dataclass(frozen=True)
class Module:
    name: str  # short name on the command line
    path: str  # the file mutated
    tests: tuple[str, ...]  # glob patterns, relative to the repository root
    exclude: tuple[str, ...] = ()  # glob patterns of test files left out


TABLE_TESTS = "tests/test_fields*.py"
CONFIG_TESTS = ("tests/config/test_*.py",)
# The fuzz tests look for crashes on random input and assert little else; they are half the time
# of the config tests, and mutmut runs them again for every mutant of nearly every function.
CONFIG_FUZZ = ("tests/config/test_config_fuzz.py",)
MODULES = (
    Module("verdicts", "pbs_compliance/verdicts.py", ("tests/test_verdicts*.py",)),
    Module(
        "plan",
        "remediate/plan.py",
        ("tests/remediate/test_remediate_plan*.py", "tests/remediate/test_plan_*.py"),
    ),
    # essence applies the field table (#11): the table's tests test essence's functions too.
    Module("essence", "pbs_compliance/essence.py", ("tests/test_essence*.py", TABLE_TESTS)),
    Module("fields", "pbs_compliance/fields.py", (TABLE_TESTS, "tests/test_essence*.py")),
    Module("pvevalues", "pbs_compliance/pvevalues.py", ("tests/test_pvevalues*.py",)),
    Module("drift", "pbs_compliance/drift.py", ("tests/test_drift*.py",)),
    Module("loader", "pbs_compliance/config/loader.py", CONFIG_TESTS, CONFIG_FUZZ),
    Module("model", "pbs_compliance/config/model.py", CONFIG_TESTS, CONFIG_FUZZ),
)


@dataclass(frozen=True)
class Score:
    module: Module
    total: int
    killed: int
    survived: int
    no_tests: int
    other: int
    seconds: float

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def _toml_value(value: object) -> str:
    # JSON strings, numbers, booleans and lists of them are valid TOML values.
    return json.dumps(value)


def _pyproject_for(module: Module, test_files: list[str], copied: list[str]) -> str:
    """pyproject.toml with its [tool.mutmut] table extended by this module's selection."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    settings = dict(tomllib.loads(text).get("tool", {}).get("mutmut", {}))
    settings["only_mutate"] = [module.path]
    settings["pytest_add_cli_args_test_selection"] = test_files
    # mutmut runs the tests inside its own copy: give it the rest of the tree as well.
    sources = {Path(s).parts[0] for s in settings.get("source_paths", [])}
    settings["also_copy"] = sorted(set(copied) - sources - {"tests", "pyproject.toml"})
    # Drop the original table (header up to the next table header), append the extended one.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[)", "", text + "\n[end]\n")
    text = text.removesuffix("\n[end]\n")
    table = "\n".join(f"{key} = {_toml_value(value)}" for key, value in settings.items())
    return f"{text.rstrip()}\n\n[tool.mutmut]\n{table}\n"


def _prepare(module: Module, workdir: Path, keep: bool) -> list[str]:
    left_out = {p for pattern in module.exclude for p in ROOT.glob(pattern)}
    test_files = sorted(
        str(p.relative_to(ROOT))
        for pattern in module.tests
        for p in ROOT.glob(pattern)
        if p not in left_out
    )
    if not test_files:
        raise SystemExit(f"{module.name}: no test file matches {', '.join(module.tests)}")
    if workdir.exists() and not keep:
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source in sorted(ROOT.iterdir()):
        if source.name in NOT_COPIED or IGNORED(str(ROOT), [source.name]):
            continue
        copied.append(source.name)
        target = workdir / source.name
        if source.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=IGNORED)
        else:
            shutil.copy2(source, target)
    (workdir / "pyproject.toml").write_text(
        _pyproject_for(module, test_files, copied), encoding="utf-8"
    )
    return test_files


def _mutmut(workdir: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        check=False,
        text=True,
        capture_output=capture,
    )


def _statuses(workdir: Path) -> dict[str, str]:
    out = _mutmut(workdir, "results", "--all", "true", capture=True).stdout
    found = re.findall(r"^\s+(\S+): (.+)$", out, flags=re.M)
    return {name: status.strip() for name, status in found}


def measure(module: Module, keep: bool, survivors: bool, quiet: bool) -> Score:
    workdir = WORK / module.name
    started = time.monotonic()
    _prepare(module, workdir, keep)
    # One mutant at a time: the machine is shared and the tests are CPU-bound.
    run = _mutmut(workdir, "run", "--max-children", "1", capture=quiet)
    if run.returncode != 0:
        if quiet:
            print(run.stdout[-4000:], run.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{module.name}: mutmut run failed (exit {run.returncode})")
    statuses = _statuses(workdir)
    count = {s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())}
    killed = count.get("killed", 0) + count.get("timeout", 0)
    survived = count.get("survived", 0)
    no_tests = count.get("no tests", 0)
    score = Score(
        module,
        total=len(statuses),
        killed=killed,
        survived=survived,
        no_tests=no_tests,
        other=len(statuses) - killed - survived - no_tests,
        seconds=time.monotonic() - started,
    )
    left = sorted(n for n, s in statuses.items() if s not in ("killed", "timeout"))
    (workdir / "survivors.txt").write_text(
        "".join(f"{n}: {statuses[n]}\n" for n in left), encoding="utf-8"
    )
    if survivors:
        for name in left:
            print(_mutmut(workdir, "show", name, capture=True).stdout)
    return score


def table(scores: list[Score]) -> str:
    lines = [
        "| module | mutants | killed | survived | no tests | score |",
        "|---|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(
            f"| `{s.module.path}` | {s.total} | {s.killed} | {s.survived} | {s.no_tests} "
            f"| {s.percent:.0f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    names = [m.name for m in MODULES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"default all: {names}")
    parser.add_argument(
        "--keep", action="store_true", help="reuse mutmut's earlier results (default: afresh)"
    )
    parser.add_argument("--survivors", action="store_true", help="print each surviving mutant")
    parser.add_argument("--quiet", action="store_true", help="hide mutmut's progress output")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(names))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    chosen = [m for m in MODULES if not args.modules or m.name in args.modules]
    scores = []
    for module in chosen:
        print(f"== {module.path}", flush=True)
        if not (ROOT / module.path).is_file():
            raise SystemExit(f"{module.path} does not exist: update MODULES in {__file__}")
        score = measure(module, args.keep, args.survivors, args.quiet)
        print(
            f"   {score.killed}/{score.total} killed ({score.percent:.1f} %) "
            f"in {score.seconds:.0f} s; survivors in {WORK.name}/{module.name}/survivors.txt",
            flush=True,
        )
        scores.append(score)
    print()
    print(table(scores))
    low = [s.module.path for s in scores if s.percent < THRESHOLD]
    if low:
        print(f"\nbelow {THRESHOLD:.0f} %: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
