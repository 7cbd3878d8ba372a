"""Secrets come from `${ENV}` or a file, never from the YAML itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_helpers import Load, Problem, SecretFile, StorageText, assert_issue, secret_of

# -- storage password ---------------------------------------------------------------------------


def test_a_password_given_as_an_env_reference_is_read_from_the_environment(
    load: Load, storage_text: StorageText
) -> None:
    config = load(storage_text(password="${PBS_PW}"), env={"PBS_PW": "s3cret"})

    assert secret_of(config) == "s3cret"


def test_the_password_never_shows_in_the_repr_of_the_config(
    load: Load, storage_text: StorageText
) -> None:
    config = load(storage_text(password="${PBS_PW}"), env={"PBS_PW": "s3cret"})

    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config.storages[0])


@pytest.mark.parametrize("literal", ["hunter2", "'${PBS_PW} '", "prefix-${PBS_PW}", "12345"])
def test_a_literal_password_is_an_error_saying_how_to_move_it_out(
    storage_problem: Problem, literal: str
) -> None:
    issue = storage_problem(password=literal, env={"PBS_PW": "x"})

    assert issue.field == "pbs_storages[0].password"
    assert (issue.line, issue.column) == (6, 15)
    assert issue.message == "a literal secret does not belong in the config file"
    assert "password: ${PBS_PBS1_PASSWORD}" in issue.fix
    assert "password_file: /path" in issue.fix
    assert "hunter2" not in str(issue)


def test_the_suggested_variable_name_is_derived_from_the_storage_name(
    problem: Problem, storage_text: StorageText
) -> None:
    text = storage_text(password="pw").replace("name: pbs1", "name: off-site.2")

    assert "${PBS_OFF_SITE_2_PASSWORD}" in problem(text).fix


def test_a_password_from_an_unset_variable_is_an_error_naming_it(storage_problem: Problem) -> None:
    assert_issue(
        storage_problem(password="${PBS_PW}"),
        "pbs_storages[0].password",
        message="environment variable `PBS_PW` is not set",
        fix="export PBS_PW=...",
    )


def test_a_password_from_an_empty_variable_is_an_error(storage_problem: Problem) -> None:
    issue = storage_problem(password="${PBS_PW}", env={"PBS_PW": ""})

    assert issue.message == "environment variable `PBS_PW` is empty"


def test_a_password_file_is_read_without_its_trailing_newline(
    load: Load, storage_text: StorageText, tmp_path: Path, secret_file: SecretFile
) -> None:
    secret_file("s3cret\n")

    assert secret_of(load(storage_text(password_file=str(tmp_path / "pbs.pw")))) == "s3cret"


def test_a_relative_password_file_is_relative_to_the_config_file(
    load: Load, storage_text: StorageText, secret_file: SecretFile
) -> None:
    secret_file("s3cret", name="secrets/pbs.pw")

    assert secret_of(load(storage_text(password_file="secrets/pbs.pw"))) == "s3cret"


def test_a_password_file_path_may_use_env_references(
    load: Load, storage_text: StorageText, tmp_path: Path, secret_file: SecretFile
) -> None:
    secret_file("s3cret")
    text = storage_text(password_file="${SECRETS}/pbs.pw")

    assert secret_of(load(text, env={"SECRETS": str(tmp_path)})) == "s3cret"


def test_a_password_file_path_with_an_unset_variable_is_an_error_naming_it(
    storage_problem: Problem,
) -> None:
    assert_issue(
        storage_problem(password_file="${SECRETS}/pbs.pw"),
        "pbs_storages[0].password_file",
        message="environment variable `SECRETS` is not set",
    )


def test_a_home_relative_password_file_is_expanded(
    load: Load,
    storage_text: StorageText,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    secret_file: SecretFile,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    secret_file("s3cret")

    assert secret_of(load(storage_text(password_file="~/pbs.pw"))) == "s3cret"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read secret file"),
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * 5000, "larger than 4096 bytes"),
    ],
)
def test_an_unreadable_empty_or_oversized_password_file_is_an_error(
    storage_problem: Problem,
    tmp_path: Path,
    secret_file: SecretFile,
    content: bytes | None,
    words: str,
) -> None:
    secret = tmp_path / "pbs.pw"
    if content is not None:
        secret_file(content)

    assert_issue(
        storage_problem(password_file=str(secret)),
        "pbs_storages[0].password_file",
        words,
        str(secret),
    )


@pytest.mark.parametrize(
    ("path", "words"),
    [("'a\\0b'", "NUL character"), ("~no-such-user-pbs/pw", "cannot expand `~`")],
)
def test_a_password_file_path_that_cannot_be_a_path_is_an_error_not_a_crash(
    storage_problem: Problem, path: str, words: str
) -> None:
    issue = storage_problem(password_file=path.replace("'", '"'))

    assert words in issue.message


def test_a_password_file_that_is_not_text_is_an_error(storage_problem: Problem) -> None:
    issue = storage_problem(password_file="[a, b]")

    assert issue.message == "must be a file path"


def test_password_and_password_file_together_are_an_error(
    problem: Problem, storage_text: StorageText
) -> None:
    issue = problem(
        storage_text(password="${PBS_PW}", password_file="/x"), env={"PBS_PW": "s3cret"}
    )

    assert issue.field == "pbs_storages[0].password_file"
    assert issue.message == "both `password` and `password_file` are given"


def test_a_password_file_can_be_a_default_for_every_storage(
    load: Load, storage_text: StorageText, tmp_path: Path, secret_file: SecretFile
) -> None:
    secret_file("shared")
    text = f"defaults:\n  password_file: {tmp_path / 'pbs.pw'}\n" + storage_text()

    assert secret_of(load(text)) == "shared"


def test_a_password_file_that_is_a_directory_names_the_reason(
    storage_problem: Problem, tmp_path: Path
) -> None:
    issue = storage_problem(password_file=str(tmp_path))

    assert "Is a directory" in issue.message


# -- pve: credentials ---------------------------------------------------------------------------


def test_a_pve_api_token_is_read_from_the_environment(load: Load) -> None:
    text = """\
        pbs_storages: []
        pve:
          url: https://pve1.example:8006
          token_id: automation@pve!pbs
          token_secret: ${PVE_TOKEN}
        """

    pve = load(text, env={"PVE_TOKEN": "0f2a"}).pve

    assert pve.url == "https://pve1.example:8006"
    assert pve.token_id == "automation@pve!pbs"
    assert pve.token_secret is not None
    assert pve.token_secret.get_secret_value() == "0f2a"


def test_a_pve_token_secret_can_come_from_a_file(load: Load, secret_file: SecretFile) -> None:
    secret_file("0f2a\n", name="token")
    text = "pbs_storages: []\npve:\n  token_id: a@pve!pbs\n  token_secret_file: token\n"

    secret = load(text).pve.token_secret

    assert secret is not None
    assert secret.get_secret_value() == "0f2a"


def test_a_pve_user_and_password_login_is_read(load: Load) -> None:
    text = "pbs_storages: []\npve:\n  user: root@pam\n  password: ${PVE_PASSWORD}\n"

    pve = load(text, env={"PVE_PASSWORD": "pw"}).pve

    assert pve.user == "root@pam"
    assert pve.password is not None
    assert pve.password.get_secret_value() == "pw"


@pytest.mark.parametrize(
    ("partner", "field", "literal"),
    [("token_id: a@pve!pbs", "token_secret", "0f2a-literal"), ("user: a@pve", "password", "pw")],
)
def test_a_literal_pve_secret_is_an_error_suggesting_an_env_variable(
    problem: Problem, partner: str, field: str, literal: str
) -> None:
    issue = problem(f"pbs_storages: []\npve:\n  {partner}\n  {field}: {literal}\n")

    assert issue.field == f"pve.{field}"
    assert issue.message == "a literal secret does not belong in the config file"
    assert f"${{PVE_{field.upper()}}}" in issue.fix
    assert f"{field}_file: /path" in issue.fix


@pytest.mark.parametrize(
    ("section", "have", "lack"),
    [
        ("token_id: a@pve!pbs", "token_id", "token_secret"),
        ("token_secret: ${S}", "token_secret", "token_id"),
        ("user: root@pam", "user", "password"),
        ("password: ${S}", "password", "user"),
    ],
)
def test_half_a_pve_credential_pair_is_an_error_naming_the_missing_half(
    problem: Problem, section: str, have: str, lack: str
) -> None:
    assert_issue(
        problem(f"pbs_storages: []\npve:\n  {section}\n", env={"S": "x"}),
        "pve",
        f"`{have}` is given without `{lack}`",
    )


@pytest.mark.parametrize("token_id", ["automation", "a@pve", "a@pve!", "a@p!b"])
def test_a_malformed_pve_token_id_is_rejected(problem: Problem, token_id: str) -> None:
    assert_issue(
        problem(
            f"pbs_storages: []\npve:\n  token_id: '{token_id}'\n  token_secret: ${{S}}\n",
            env={"S": "x"},
        ),
        "pve.token_id",
        "user@realm!tokenname",
    )


def test_an_unset_pve_token_secret_is_one_error_not_also_half_a_credential_pair(
    problem: Problem,
) -> None:
    assert_issue(
        problem("pbs_storages: []\npve:\n  token_id: a@pve!pbs\n  token_secret: ${PVE_T}\n"),
        "pve.token_secret",
        message="environment variable `PVE_T` is not set",
    )


def test_an_unreadable_pve_password_file_is_one_error(problem: Problem, tmp_path: Path) -> None:
    text = f"pbs_storages: []\npve:\n  user: root@pam\n  password_file: {tmp_path / 'nope'}\n"

    assert_issue(problem(text), "pve.password_file", "cannot read secret file")
