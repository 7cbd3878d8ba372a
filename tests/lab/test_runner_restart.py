"""A lab restarted in the same state dir is the same cluster: same certificates, logins, ports."""

from __future__ import annotations

import stat
from pathlib import Path

from pbs_compliance import verdicts
from pbs_compliance.config import load_config
from pbs_compliance.evidence import gather_evidence
from pbs_compliance.lab.runner import Lab
from pbs_compliance.lab.scenario import builtin
from pbs_compliance.settings import Overrides, resolve


def test_a_restarted_lab_serves_what_its_kept_storage_cfg_pins(tmp_path: Path) -> None:
    scenario = builtin().with_ephemeral_ports().model_copy(update={"auth_failure_delay": 0.0})
    first = Lab(scenario, tmp_path)
    first.start()
    pinned = {name: (pbs.fingerprint, pbs.port) for name, pbs in first.pbs.items()}
    first.pbs["pbs3.lab.example"].renew_certificate()
    renewed = first.pbs["pbs3.lab.example"].fingerprint
    token = first.token_secret
    first.stop()
    assert stat.S_IMODE((tmp_path / "lab-state.json").stat().st_mode) == 0o600

    second = Lab(scenario, tmp_path)
    second.start()
    try:
        assert second.token_secret == token
        assert second.pbs["pbs1.lab.example"].fingerprint == pinned["pbs1.lab.example"][0]
        assert second.pbs["pbs1.lab.example"].port == pinned["pbs1.lab.example"][1]
        assert second.pbs["pbs3.lab.example"].fingerprint == renewed  # what happened stays
        config = load_config(second.config_path, second.env)
        evidence = gather_evidence(resolve(config, Overrides(), {}))
        for spec in config.storages:
            if spec.name == "media":  # PVE still pins the certificate from before the renewal
                media = verdicts.drift(spec, evidence.live)
                assert [d.key for d in media.drift.diffs] == ["fingerprint"]  # type: ignore[union-attr]
                continue
            assert verdicts.drift(spec, evidence.live).passed, spec.name
            for target, node in verdicts.node_targets(config, evidence.live):
                if target.name == spec.name:
                    assert verdicts.node(spec, node, evidence.live).passed, (spec.name, node)
    finally:
        second.stop()
