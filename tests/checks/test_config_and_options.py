"""A broken config stops the run before collection; options beat the environment beats the file."""

from __future__ import annotations

import datetime as dt

import pytest
from checks_harness import ChecksRun, RunChecks, WriteConfig, lab_config
from cryptography import x509

from pbs_compliance.lab.runner import Lab

BROKEN = """\
pbs_storages:
  - name: homelab-backup
    server: pbs1.lab.example
    datastore: homelab
    fingerprint: "not-a-fingerprint"
    port: 99999
"""


def _assert_stopped_before_collection(run: ChecksRun) -> None:
    assert run.result.ret == 2, run.output
    assert "Traceback" not in run.output
    assert "ERROR" not in run.output
    assert "collected" not in run.output
    assert run.cases == {}
    run.result.stdout.fnmatch_lines(
        ["*pbs-compliance: the configuration is invalid, nothing was checked*"]
    )


def test_a_broken_config_stops_the_run_with_file_line_column_and_field(
    run_checks: RunChecks, write_config: WriteConfig
) -> None:
    path = write_config(BROKEN)

    run = run_checks(None, config=path)

    _assert_stopped_before_collection(run)
    run.result.stdout.fnmatch_lines(
        [
            "pbs-compliance: invalid configuration (2 problems):",
            f"  {path}:5:18: pbs_storages[[]0].fingerprint: must be 32 colon-separated hex bytes*",
            f"  {path}:6:11: pbs_storages[[]0].port: Input should be less than or equal to 65535*",
        ]
    )


def test_a_yaml_syntax_error_stops_the_run_with_its_location(
    run_checks: RunChecks, write_config: WriteConfig
) -> None:
    path = write_config("pbs_storages:\n  - name: [oops\n")

    run = run_checks(None, config=path)

    _assert_stopped_before_collection(run)
    run.result.stdout.fnmatch_lines([f"  {path}:3:1: YAML syntax error: *"])


def test_a_missing_default_config_stops_a_run_of_the_checks_directory(
    pytester: pytest.Pytester, run_checks: RunChecks
) -> None:
    run = run_checks(None)

    _assert_stopped_before_collection(run)
    run.result.stdout.fnmatch_lines(
        [f"  {pytester.path / 'config' / 'pbs-storage.yaml'}: file not found"]
    )


def test_a_bad_setting_from_the_environment_names_its_source(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    run = run_checks(shared_lab, extra_env={"PBS_COMPLIANCE_PROBE_TIMEOUT": "soon"})

    _assert_stopped_before_collection(run)
    assert "PBS_COMPLIANCE_PROBE_TIMEOUT='soon' is not a float" in run.output


def test_the_default_config_path_is_config_pbs_storage_yaml_under_the_invocation_dir(
    shared_lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    path = write_config(lab_config(shared_lab), name="config/pbs-storage.yaml")

    run = run_checks(None, "--collect-only", extra_env=shared_lab.env)

    assert run.result.ret == 0, run.output
    assert f"pbs-compliance: config {path} (4 storages)" in run.output


def test_the_config_comes_from_the_environment_and_the_option_beats_it(
    shared_lab: Lab, run_checks: RunChecks, write_config: WriteConfig
) -> None:
    config = lab_config(shared_lab)
    from_env = write_config(config, name="env.yaml")
    config["pbs_storages"] = config["pbs_storages"][:1]
    from_option = write_config(config, name="option.yaml")
    environ = {**shared_lab.env, "PBS_COMPLIANCE_CONFIG": str(from_env)}

    by_env = run_checks(None, "--collect-only", extra_env=environ)
    by_option = run_checks(None, "--collect-only", f"--pbs-config={from_option}")

    assert f"pbs-compliance: config {from_env} (4 storages)" in by_env.output
    assert f"pbs-compliance: config {from_option} (1 storages)" in by_option.output


@pytest.mark.parametrize(
    ("option", "env", "file_shows", "env_shows", "option_shows"),
    [
        pytest.param(
            ("--pve-url", "https://127.0.0.3:8006"),
            ("PBS_COMPLIANCE_PVE_URL", "https://127.0.0.2:8006"),
            "pbs-compliance: PVE https://127.0.0.1:*; DNS *",
            "pbs-compliance: PVE https://127.0.0.2:8006; DNS *",
            "pbs-compliance: PVE https://127.0.0.3:8006; DNS *",
            id="pve-url",
        ),
        pytest.param(
            ("--dns-server", "127.0.0.3"),
            ("PBS_COMPLIANCE_DNS_SERVERS", "127.0.0.2:5353, 127.0.0.4:53"),
            "pbs-compliance: PVE *; DNS 127.0.0.1:*; probe timeout *",
            "pbs-compliance: PVE *; DNS 127.0.0.2:5353, 127.0.0.4:53; probe timeout *",
            "pbs-compliance: PVE *; DNS 127.0.0.3:53; probe timeout *",
            id="dns-server",
        ),
        pytest.param(
            ("--probe-timeout", "0.7"),
            ("PBS_COMPLIANCE_PROBE_TIMEOUT", "2.5"),
            "pbs-compliance: PVE *; probe timeout 1 s",
            "pbs-compliance: PVE *; probe timeout 2.5 s",
            "pbs-compliance: PVE *; probe timeout 0.7 s",
            id="probe-timeout",
        ),
    ],
)
def test_an_option_beats_the_environment_which_beats_the_file(
    shared_lab: Lab,
    run_checks: RunChecks,
    option: tuple[str, str],
    env: tuple[str, str],
    file_shows: str,
    env_shows: str,
    option_shows: str,
) -> None:
    from_file = run_checks(shared_lab, "--collect-only")
    from_env = run_checks(shared_lab, "--collect-only", extra_env=dict([env]))
    from_option = run_checks(shared_lab, "--collect-only", *option, extra_env=dict([env]))

    from_file.result.stdout.fnmatch_lines([file_shows])
    from_env.result.stdout.fnmatch_lines([env_shows])
    from_option.result.stdout.fnmatch_lines([option_shows])


def test_cert_expiry_days_from_the_environment_applies_and_the_option_beats_it(
    shared_lab: Lab, run_checks: RunChecks
) -> None:
    pem = shared_lab.pbs["pbs1.lab.example"].cert_pem
    days = (x509.load_pem_x509_certificate(pem).not_valid_after_utc - dt.datetime.now(dt.UTC)).days
    environ = {"PBS_COMPLIANCE_CERT_EXPIRY_DAYS": str(days + 1)}

    by_env = run_checks(shared_lab, "-m", "tls", extra_env=environ)
    by_option = run_checks(shared_lab, "-m", "tls", f"--cert-expiry-days={days}", extra_env=environ)

    assert len(by_env.failed) == 4
    assert f"threshold {days + 1})" in by_env.message("tls[archive]")
    assert by_option.failed == set()
    assert len(by_option.ids("passed")) == 4


def test_a_broken_config_stops_an_xdist_run_before_any_worker_collects(
    run_checks: RunChecks, write_config: WriteConfig
) -> None:
    run = run_checks(None, "-n", "2", config=write_config(BROKEN))

    _assert_stopped_before_collection(run)
    assert "pbs_storages[0].port: Input should be less than or equal to 65535" in run.output
