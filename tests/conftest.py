"""The project's own tests: lab fixtures for every test that needs a PVE, PBS or DNS to talk to."""

from __future__ import annotations

pytest_plugins = ["pbs_compliance.lab.fixtures"]
