"""The repository stands alone: a user's clone needs nothing beside it to pass `make test`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an sdist): nothing to compare against")
    paths = [ROOT / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and p.suffix not in {".png", ".pem"}]


def test_no_file_refers_to_a_sibling_folder_or_to_where_this_clone_lies() -> None:
    # The sibling folder beside a clone, by relative or absolute path, and the clone's own
    # absolute path: none exists on a user's machine. (Not the parent alone: a clone in /tmp
    # would then forbid every /tmp/ in an example.)
    sibling = "/".join(["..", "shared"])  # spelt apart: this file must not match itself
    outside = [sibling, f"{ROOT.parent}/shared", f"{ROOT}/"]
    found = [
        f"{path.relative_to(ROOT)}: {needle}"
        for path in _tracked_text_files()
        for needle in outside
        if needle in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert found == []


def test_the_vendored_test_data_is_in_the_repository_with_its_licence() -> None:
    data = ROOT / "tests" / "data"
    assert "The MIT License" in (data / "junit-10.xsd").read_text(encoding="utf-8")
    assert (data / "storage.cfg.sample").read_text(encoding="utf-8").startswith("dir: local\n")
    assert "junit-10.xsd" in (data / "README.md").read_text(encoding="utf-8")
