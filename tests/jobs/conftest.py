"""The job tests reuse the PVE emulator's fixtures (`start_pve`) from tests/lab."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))

from pve_fixtures import fixture_pve_pki, fixture_start_pve

__all__ = ["fixture_pve_pki", "fixture_start_pve"]
