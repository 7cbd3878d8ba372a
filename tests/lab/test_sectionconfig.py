"""storage.cfg is read and written byte for byte the way PVE's section config does it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pbs_compliance.lab.sectionconfig import (
    IMPLICIT_LOCAL,
    Section,
    config_digest,
    parse_storage_cfg,
    render_storage_cfg,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "storage.cfg.sample"
SAMPLE_TEXT = (
    "dir: local\n"
    "\tpath /var/lib/vz\n"
    "\tcontent iso,backup,images,snippets,rootdir,vztmpl\n"
    "\tprune-backups keep-all=1\n"
    "\n"
    "pbs: homelab-backup\n"
    "\tdatastore homelab-backup\n"
    "\tserver proxmox-backup-server.maas\n"
    "\tcontent backup\n"
    "\tusername root@pam\n"
    "\n"
    "pbs: offsite\n"
    "\tdisable\n"
    "\tdatastore offsite\n"
    "\tserver 10.0.0.5\n"
    "\tnodes pve2,pve1\n"
    "\n"
)


def test_a_written_file_reads_back_to_the_same_bytes() -> None:
    config = parse_storage_cfg(SAMPLE_TEXT)
    assert render_storage_cfg(config.sections) == SAMPLE_TEXT
    assert config.digest == hashlib.sha1(SAMPLE_TEXT.encode()).hexdigest()


def test_the_real_sample_round_trips_unchanged() -> None:
    text = SAMPLE.read_text()
    assert render_storage_cfg(parse_storage_cfg(text).sections) == text


@pytest.mark.parametrize("text", [None, ""], ids=["missing", "empty"])
def test_a_missing_or_empty_file_has_the_empty_digest_and_an_implicit_local(
    text: str | None,
) -> None:
    config = parse_storage_cfg(text)
    assert config.digest == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert config.sections == (IMPLICIT_LOCAL,)
    assert config.get("local") is IMPLICIT_LOCAL


def test_the_implicit_local_is_written_as_pve_writes_it_on_first_save() -> None:
    written = parse_storage_cfg("").replaced(parse_storage_cfg("").sections)
    assert written.text == SAMPLE_TEXT.split("pbs: homelab-backup")[0]
    assert written.digest == config_digest(written.text.encode())


def test_parsing_options_bare_keys_and_odd_whitespace() -> None:
    config = parse_storage_cfg(
        "# comment\npbs:   x1  \n\tdisable\n   server   10.0.0.1  \n# inside\n\tjunk\n\n"
    )
    section = config.get("x1")
    assert section == Section(
        "pbs", "x1", (("disable", None), ("server", "10.0.0.1"), ("junk", None))
    )
    assert section.option("disable") == ""
    assert section.option("nope") is None
    assert section.has_option("server")


def test_lines_outside_a_section_are_ignored_and_a_later_duplicate_wins() -> None:
    config = parse_storage_cfg("stray line\npbs: a1\n\tserver one\n\npbs: a1\n\tserver two\n\n")
    assert [s.id for s in config.sections] == ["local", "a1"]
    assert config.get("a1") is not None
    assert config.get("a1").option("server") == "two"  # type: ignore[union-attr]


def test_unknown_types_are_kept_verbatim() -> None:
    text = "dir: local\n\tpath /var/lib/vz\n\nweird: thing\n\tfoo bar baz\n\tflag\n\n"
    config = parse_storage_cfg(text)
    assert render_storage_cfg(config.sections) == text


def test_a_local_of_the_wrong_type_or_path_is_replaced_by_the_implicit_one() -> None:
    assert parse_storage_cfg("nfs: local\n\tserver x\n\n").get("local") is IMPLICIT_LOCAL
    replaced = parse_storage_cfg("dir: local\n\tpath /srv\n\n")
    assert replaced.get("local") is IMPLICIT_LOCAL


def test_a_local_without_path_gets_it_and_loses_node_restrictions() -> None:
    config = parse_storage_cfg("dir: local\n\tcontent iso\n\tnodes pve1\n\n")
    local = config.get("local")
    assert local is not None
    assert local.options == (("path", "/var/lib/vz"), ("content", "iso"))
    assert not local.implicit
