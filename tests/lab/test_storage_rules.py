# ruff: noqa: E501 - request/answer tables read best one row per line
"""The pure storage-config rules answer every request of the reference appendix as PVE does."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from pbs_compliance.lab.pve_errors import PveError
from pbs_compliance.lab.pve_schema import Params, parse_prune_backups, split_list, validate
from pbs_compliance.lab.storage import (
    StorageSecrets,
    StorageState,
    create_storage,
    delete_storage,
    enabled_on_node,
    list_storages,
    read_storage,
    touch_other_storage,
    update_storage,
)

FP = ":".join(["54"] * 32)
PBS1: dict[str, str | list[str] | None] = {
    "type": "pbs",
    "storage": "pbs1",
    "server": "10.0.0.1",
    "datastore": "store1",
    "username": "backup@pbs",
    "password": "secret",
    "fingerprint": FP,
    "content": "backup",
    "prune-backups": "keep-daily=7,keep-weekly=4",
}
DIGEST_MSG = "update storage failed: detected modified configuration - file changed by other user? Try again.\n"
ABSENT = "\0absent"
UNDEFINED = "property is not defined in schema and the schema does not allow additional properties"


def no_activation(_view: Mapping[str, object], _password: str | None) -> str | None:
    return None


def create(state: StorageState, params: Params, activate: object = no_activation) -> StorageState:
    new, _ = create_storage(state, params, handling_node="pve1", activate=activate)  # type: ignore[arg-type]
    return new


@pytest.fixture
def state() -> StorageState:
    """An empty storage.cfg plus pbs1 as the appendix creates it."""
    return create(StorageState.from_text(None), PBS1)


@dataclass(frozen=True)
class Row:
    """One appendix row: a request against pbs1 and PVE's answer."""

    op: str
    params: dict[str, str | list[str] | None]
    status: int
    message: str | None = None
    errors: dict[str, str] | None = None
    check: dict[str, object] = field(default_factory=dict)
    absent: tuple[str, ...] = ()


def fixed_digest(state: StorageState) -> dict[str, str | list[str] | None]:
    return {"digest": state.config.digest}


ROWS: dict[str, Row] = {
    "put-current-digest": Row(
        "put", {"namespace": "prod", "digest": "CURRENT"}, 200, check={"namespace": "prod"}
    ),
    "put-stale-digest": Row(
        "put", {"namespace": "prod", "digest": "0" * 39 + "1"}, 500, DIGEST_MSG
    ),
    "put-malformed-digest": Row(
        "put", {"namespace": "prod", "digest": "nonsense"}, 500, DIGEST_MSG
    ),
    "put-empty-digest": Row(
        "put", {"namespace": "prod", "digest": ""}, 200, check={"namespace": "prod"}
    ),
    "put-datastore": Row(
        "put",
        {"datastore": "other"},
        400,
        "Parameter verification failed.\n",
        {"datastore": UNDEFINED},
    ),
    "put-server-unchanged": Row(
        "put",
        {"server": "10.0.0.1"},
        500,
        "update storage failed: can't change value of fixed parameter 'server'\n",
    ),
    "put-delete-server": Row(
        "put",
        {"delete": "server"},
        500,
        "update storage failed: unable to delete required option 'server'\n",
    ),
    "put-delete-datastore": Row(
        "put",
        {"delete": "datastore"},
        500,
        "update storage failed: unable to delete required option 'datastore'\n",
    ),
    "put-content-images": Row("put", {"content": "images"}, 200, check={"content": "none"}),
    "put-content-backup-iso": Row(
        "put", {"content": "backup,iso"}, 200, check={"content": "backup"}
    ),
    "put-content-backup-none": Row(
        "put",
        {"content": "backup,none"},
        500,
        "update storage failed: unable to combine 'none' with other content types\n",
    ),
    "put-content-unknown-word": Row(
        "put",
        {"content": "backup,movies"},
        400,
        errors={"content": "invalid format - invalid content type 'movies'\n"},
    ),
    "put-delete-prune-backups": Row(
        "put", {"delete": "prune-backups"}, 200, absent=("prune-backups",)
    ),
    "put-delete-foo": Row(
        "put", {"delete": "foo"}, 500, "update storage failed: no such option 'foo'\n"
    ),
    "put-delete-and-set": Row(
        "put",
        {"delete": "username", "username": "x@pbs"},
        500,
        "update storage failed: cannot set and delete property 'username' at the same time!\n",
    ),
    "put-disable-1": Row("put", {"disable": "1"}, 200, check={"disable": 1}),
    "put-disable-true": Row(
        "put",
        {"disable": "true"},
        400,
        errors={"disable": "type check ('boolean') failed - got 'true'"},
    ),
    "put-disable-yes": Row(
        "put",
        {"disable": "yes"},
        400,
        errors={"disable": "type check ('boolean') failed - got 'yes'"},
    ),
    "put-disable-empty": Row(
        "put", {"disable": ""}, 400, errors={"disable": "type check ('boolean') failed - got ''"}
    ),
    "put-path": Row("put", {"path": "/x"}, 400, errors={"path": UNDEFINED}),
    "put-shared": Row(
        "put", {"shared": "1"}, 500, "update storage failed: unexpected property 'shared'\n"
    ),
    "put-type": Row("put", {"type": "dir"}, 400, errors={"type": UNDEFINED}),
    "put-fingerprint-malformed": Row(
        "put",
        {"fingerprint": "AB:CD"},
        400,
        errors={"fingerprint": "value does not match the regex pattern"},
    ),
    "put-port-70000": Row(
        "put", {"port": "70000"}, 400, errors={"port": "value must have a maximum value of 65535"}
    ),
    "put-port-0": Row(
        "put", {"port": "0"}, 400, errors={"port": "value must have a minimum value of 1"}
    ),
    "put-port-text": Row(
        "put", {"port": "http"}, 400, errors={"port": "type check ('integer') failed - got 'http'"}
    ),
    "put-prune-not-integer": Row(
        "put",
        {"prune-backups": "keep-daily=x"},
        400,
        errors={
            "prune-backups": "invalid format - format error\nprune-backups.keep-daily: type check ('integer') failed - got 'x'\n"
        },
    ),
    "put-prune-negative": Row(
        "put",
        {"prune-backups": "keep-last=-1"},
        400,
        errors={
            "prune-backups": "invalid format - format error\nprune-backups.keep-last: value must have a minimum value of 0\n"
        },
    ),
    "put-prune-keep-all-and-more": Row(
        "put",
        {"prune-backups": "keep-all=1,keep-daily=1"},
        400,
        errors={
            "prune-backups": "invalid format - keep-all cannot be set together with other options.\n"
        },
    ),
    "put-prune-unknown-key": Row(
        "put",
        {"prune-backups": "keep-forever=1"},
        400,
        errors={
            "prune-backups": "invalid format - invalid key in comma-separated list property: keep-forever\n"
        },
    ),
    "put-prune-duplicate-key": Row(
        "put",
        {"prune-backups": "keep-last=1,keep-last=2"},
        400,
        errors={
            "prune-backups": "invalid format - duplicate key in comma-separated list property: keep-last\n"
        },
    ),
    "put-prune-kept-verbatim": Row(
        "put",
        {"prune-backups": "keep-weekly=4,keep-last=0,keep-all=no"},
        200,
        check={"prune-backups": "keep-weekly=4,keep-last=0,keep-all=no"},
    ),
    "put-username-empty-removes": Row("put", {"username": ""}, 200, absent=("username",)),
    "put-max-protected-minus-1": Row(
        "put", {"max-protected-backups": "-1"}, 200, check={"max-protected-backups": -1}
    ),
    "put-max-protected-minus-2": Row(
        "put",
        {"max-protected-backups": "-2"},
        400,
        errors={"max-protected-backups": "value must have a minimum value of -1"},
    ),
    "put-namespace-unchecked": Row(
        "put",
        {"namespace": "a//b", "username": "norealm", "fingerprint": FP.lower()},
        200,
        check={"namespace": "a//b", "username": "norealm", "fingerprint": FP.lower()},
    ),
    "put-undefined-value": Row(
        "put",
        {"namespace": None},
        500,
        "update storage failed: got undefined value for option 'namespace'\n",
    ),
    "put-missing-storage": Row(
        "put", {"storage": "nope"}, 500, "update storage failed: storage 'nope' does not exist\n"
    ),
    "put-digest-too-long": Row(
        "put", {"digest": "a" * 65}, 400, errors={"digest": "value may only be 64 characters long"}
    ),
    "put-repeated-nodes-joined": Row(
        "put", {"nodes": ["pve1", "pve2"]}, 200, check={"nodes": "pve1,pve2"}
    ),
    "put-repeated-username": Row(
        "put",
        {"username": ["a@pbs", "b@pbs"]},
        400,
        errors={"username": "type check ('string') failed - got ARRAY"},
    ),
    "put-bad-node-name": Row(
        "put",
        {"nodes": "pve_1"},
        400,
        errors={"nodes": "invalid format - value does not look like a valid node name\n"},
    ),
    "put-line-feed": Row(
        "put", {"namespace": "a\nb"}, 500, "update storage failed: property contains a line feed\n"
    ),
    "get-pbs1": Row(
        "get",
        {},
        200,
        check={
            "shared": 1,
            "storage": "pbs1",
            "type": "pbs",
            "prune-backups": "keep-daily=7,keep-weekly=4",
            "content": "backup",
        },
        absent=("password",),
    ),
    "get-nope": Row("get", {"storage": "nope"}, 500, "storage 'nope' does not exist\n"),
    "post-1bad": Row(
        "post",
        {"storage": "1bad"},
        400,
        errors={"storage": "invalid format - storage ID '1bad' contains illegal characters\n"},
    ),
    "post-short-id": Row(
        "post",
        {"storage": "a"},
        400,
        errors={"storage": "invalid format - storage ID 'a' cannot be shorter than 2 characters\n"},
    ),
    "post-pbs_x": Row("post", {"storage": "pbs_x"}, 200),
    "post-PBS1": Row("post", {"storage": "PBS1"}, 200),
    "post-existing": Row(
        "post", {}, 500, "create storage failed: storage ID 'pbs1' already defined\n"
    ),
    "post-no-datastore": Row(
        "post",
        {"storage": "pbs2", "datastore": ABSENT},
        500,
        "missing value for required option 'datastore'\n",
    ),
    "post-path": Row(
        "post", {"storage": "pbs2", "path": "/x"}, 500, "unexpected property 'path'\n"
    ),
    "post-undefined-value": Row(
        "post",
        {"storage": "pbs2", "namespace": None},
        500,
        "got undefined value for option 'namespace'\n",
    ),
    "post-shared": Row(
        "post", {"storage": "pbs2", "shared": "1"}, 500, "unexpected property 'shared'\n"
    ),
    "post-digest": Row(
        "post", {"storage": "pbs2", "digest": "abc"}, 400, errors={"digest": UNDEFINED}
    ),
    "post-content-images": Row("post", {"storage": "pbs2", "content": "images"}, 200),
    "post-content-none-combined": Row(
        "post",
        {"storage": "pbs2", "content": "none,backup"},
        500,
        "unable to combine 'none' with other content types\n",
    ),
    "post-bad-server": Row(
        "post",
        {"storage": "pbs2", "server": "bad server!"},
        400,
        errors={
            "server": "invalid format - value does not look like a valid server name or IP address\n"
        },
    ),
    "post-bad-type": Row(
        "post",
        {"storage": "pbs2", "type": "tape"},
        400,
        errors={
            "type": "value 'tape' does not have a value in the enumeration 'btrfs, cephfs, cifs, dir, esxi, iscsi, iscsidirect, lvm, lvmthin, nfs, pbs, rbd, zfs, zfspool'"
        },
    ),
    "post-no-type": Row(
        "post",
        {"storage": "pbs2", "type": ABSENT},
        400,
        errors={"type": "property is missing and it is not optional"},
    ),
    "post-master-pubkey-alone": Row(
        "post",
        {"storage": "pbs2", "master-pubkey": "QUJD"},
        500,
        "create storage failed: 'master-pubkey' can only be used together with 'encryption-key'\n",
    ),
    "post-bad-encryption-key": Row(
        "post",
        {"storage": "pbs2", "encryption-key": "{}"},
        500,
        "create storage failed: Value does not seems like a valid, JSON formatted encryption key!\n",
    ),
    "delete-nope": Row(
        "delete", {"storage": "nope"}, 500, "delete storage failed: storage 'nope' does not exist\n"
    ),
    "delete-force": Row("delete", {"force": "1"}, 400, errors={"force": UNDEFINED}),
    "list-bad-type": Row(
        "list",
        {"type": "tape"},
        400,
        errors={
            "type": "value 'tape' does not have a value in the enumeration 'btrfs, cephfs, cifs, dir, esxi, iscsi, iscsidirect, lvm, lvmthin, nfs, pbs, rbd, zfs, zfspool'"
        },
    ),
}


def run(state: StorageState, row: Row) -> tuple[StorageState, object]:
    if row.op == "put":
        params = {"storage": "pbs1", **row.params}
        if params.get("digest") == "CURRENT":
            params["digest"] = state.config.digest
        return update_storage(state, params)
    if row.op == "post":
        params = {k: v for k, v in {**PBS1, **row.params}.items() if v != ABSENT}
        return create_storage(state, params, handling_node="pve1", activate=no_activation)
    if row.op == "get":
        return state, read_storage(state, {"storage": "pbs1", **row.params})
    if row.op == "delete":
        return delete_storage(state, {"storage": "pbs1", **row.params}), None
    return state, list_storages(state, row.params)


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_every_appendix_request_gets_pves_answer(state: StorageState, row: Row) -> None:
    if row.status != 200:
        with pytest.raises(PveError) as caught:
            run(state, row)
        assert caught.value.status == row.status
        if row.message is not None:
            assert caught.value.message == row.message
        if row.status == 400:
            assert caught.value.reason == "Parameter verification failed."
        assert caught.value.errors == row.errors
        return
    new_state, data = run(state, row)
    if row.op in ("put", "post"):
        storage_id = str(row.params.get("storage", "pbs1"))
        assert data == {"storage": storage_id, "type": "pbs", "config": {}}
        data = read_storage(new_state, {"storage": storage_id})
    assert isinstance(data, dict)
    for key, value in row.check.items():
        assert data[key] == value, key
    for key in row.absent:
        assert key not in data


def test_a_created_entry_reads_back_typed_with_the_file_digest(state: StorageState) -> None:
    data = read_storage(state, {"storage": "pbs1"})
    assert data == {
        "type": "pbs",
        "storage": "pbs1",
        "server": "10.0.0.1",
        "datastore": "store1",
        "username": "backup@pbs",
        "fingerprint": FP,
        "content": "backup",
        "prune-backups": "keep-daily=7,keep-weekly=4",
        "shared": 1,
        "digest": state.config.digest,
    }
    assert state.password("pbs1") == "secret"
    assert "secret" not in state.config.text


def test_put_content_images_stores_none_in_the_file(state: StorageState) -> None:
    new, _ = update_storage(state, {"storage": "pbs1", "content": "images"})
    assert "\tcontent none\n" in new.config.text


def test_disable_is_a_bare_line_and_disable_0_removes_it(state: StorageState) -> None:
    disabled, _ = update_storage(state, {"storage": "pbs1", "disable": "1"})
    assert "pbs: pbs1\n\tdisable\n\tdatastore store1\n" in disabled.config.text
    enabled, _ = update_storage(disabled, {"storage": "pbs1", "disable": "0"})
    assert "disable" not in enabled.config.text
    assert "disable" not in read_storage(enabled, {"storage": "pbs1"})


def test_every_write_changes_the_digest_every_entry_reports(state: StorageState) -> None:
    other = create(state, {**PBS1, "storage": "pbs2"})
    assert other.config.digest != state.config.digest
    digests = {d["digest"] for d in list_storages(other, {})}
    assert digests == {other.config.digest}
    with pytest.raises(PveError) as caught:
        update_storage(other, {"storage": "pbs1", "digest": state.config.digest, "port": "8207"})
    assert caught.value.message == DIGEST_MSG


def test_a_perl_false_digest_skips_the_check(state: StorageState) -> None:
    new, _ = update_storage(state, {"storage": "pbs1", "digest": "0", "port": "8207"})
    assert read_storage(new, {"storage": "pbs1"})["port"] == 8207


def test_list_has_the_implicit_local_with_priority_until_the_first_save() -> None:
    empty = StorageState.from_text(None)
    [local] = list_storages(empty, {})
    assert local["priority"] == 0
    assert local["digest"] == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    saved = create(empty, PBS1)
    assert saved.config.text.startswith("dir: local\n\tpath /var/lib/vz\n")
    listed = list_storages(saved, {})
    assert "priority" not in listed[0]
    assert [d["storage"] for d in list_storages(saved, {"type": "pbs"})] == ["pbs1"]


def test_other_types_are_listed_typed_and_deleted_but_not_updated() -> None:
    state = StorageState.from_text(
        "dir: local\n\tpath /var/lib/vz\n\tshared 0\n\tdisable\n\n"
        "nfs: share\n\tserver 10.1.1.1\n\texport /x\n\tpath /mnt/pve/share\n\tcontent iso\n\n"
    )
    views = {d["storage"]: d for d in list_storages(state, {})}
    assert views["local"]["shared"] == 0
    assert views["local"]["disable"] == 1
    assert views["share"]["shared"] == 1
    assert views["share"]["content"] == "iso"
    with pytest.raises(PveError) as caught:
        update_storage(state, {"storage": "share", "content": "iso"})
    assert caught.value.status == 500
    gone = delete_storage(state, {"storage": "share"})
    assert "share" not in gone.config.ids()


def test_a_storage_used_as_base_cannot_be_deleted() -> None:
    state = StorageState.from_text(
        "iscsi: san\n\tportal 10.0.0.1\n\ttarget iqn.x\n\n"
        "lvm: vg\n\tvgname vg0\n\tbase san:0.0.0.scsi-1\n\n"
    )
    with pytest.raises(PveError) as caught:
        delete_storage(state, {"storage": "san"})
    assert caught.value.message == (
        "delete storage failed: can't remove storage - storage is used as base of another storage\n"
    )


def test_create_runs_the_activation_check_only_where_the_entry_is_enabled() -> None:
    seen: list[Mapping[str, object]] = []

    def refuse(view: Mapping[str, object], password: str | None) -> str | None:
        seen.append(view)
        return "error fetching datastores - 500 Can't connect to 10.0.0.1:8007"

    empty = StorageState.from_text(None)
    with pytest.raises(PveError) as caught:
        create(empty, PBS1, activate=refuse)
    assert caught.value.message == (
        "create storage failed: pbs1: error fetching datastores - 500 Can't connect to 10.0.0.1:8007\n"
    )
    assert seen[0]["server"] == "10.0.0.1"
    assert seen[0]["storage"] == "pbs1"
    create(empty, {**PBS1, "disable": "1"}, activate=refuse)
    create(empty, {**PBS1, "nodes": "pve2"}, activate=refuse)
    assert len(seen) == 1
    create(empty, {**PBS1, "nodes": "pve1,pve2"}, activate=no_activation)


def test_a_failed_activation_saves_nothing() -> None:
    empty = StorageState.from_text(None)

    def missing(_view: Mapping[str, object], _pw: str | None) -> str | None:
        return "Cannot find datastore 'store1', check permissions and existence!\n"

    with pytest.raises(PveError) as caught:
        create(empty, PBS1, activate=missing)
    assert caught.value.reason == (
        "create storage failed: pbs1: Cannot find datastore 'store1', check permissions and existence!"
    )


def test_an_empty_nodes_value_at_create_is_dropped(state: StorageState) -> None:
    new = create(StorageState.from_text(None), {**PBS1, "nodes": ""})
    assert "nodes" not in read_storage(new, {"storage": "pbs1"})


def test_create_without_password_removes_an_old_password_file() -> None:
    stale = StorageState.from_text(None, {"pbs1": StorageSecrets(password="old")})
    new = create(stale, {k: v for k, v in PBS1.items() if k != "password"})
    assert new.password("pbs1") is None
    assert "pbs1" not in new.secrets


def test_password_is_updated_and_deleted_apart_from_the_file(state: StorageState) -> None:
    changed, _ = update_storage(state, {"storage": "pbs1", "password": "new"})
    assert changed.password("pbs1") == "new"
    assert changed.config.text == state.config.text
    deleted, _ = update_storage(changed, {"storage": "pbs1", "delete": "password"})
    assert deleted.password("pbs1") is None
    both, _ = update_storage(changed, {"storage": "pbs1", "delete": "password", "password": "x"})
    assert both.password("pbs1") == "x"


def test_delete_removes_the_entry_and_its_secrets(state: StorageState) -> None:
    gone = delete_storage(state, {"storage": "pbs1"})
    assert "pbs1" not in gone.config.ids()
    assert gone.password("pbs1") is None
    with pytest.raises(PveError) as caught:
        delete_storage(gone, {"storage": "pbs1"})
    assert caught.value.message == "delete storage failed: storage 'pbs1' does not exist\n"


def test_an_encryption_key_is_stored_apart_and_shown_as_its_fingerprint() -> None:
    key = json.dumps({"data": "abc", "fingerprint": "aa:bb"})
    master = base64.b64encode(b"-----BEGIN PUBLIC KEY-----\nxyz\n-----END PUBLIC KEY-----").decode()
    params = {**PBS1, "encryption-key": key, "master-pubkey": master}
    new, data = create_storage(
        StorageState.from_text(None), params, handling_node="pve1", activate=no_activation
    )
    assert data["config"] == {"encryption-key": key}
    view = read_storage(new, {"storage": "pbs1"})
    assert view["encryption-key"] == "aa:bb"
    assert view["master-pubkey"] == "1"
    assert new.secrets["pbs1"].encryption_key == key
    assert new.secrets["pbs1"].master_pubkey == base64.b64decode(master)
    assert key not in new.config.text


def test_autogen_makes_a_key_and_returns_it_once() -> None:
    generated = json.dumps({"data": "k", "fingerprint": "12:34"})
    new, data = create_storage(
        StorageState.from_text(None),
        {**PBS1, "encryption-key": "autogen"},
        handling_node="pve1",
        activate=no_activation,
        key_factory=lambda: generated,
    )
    assert data["config"] == {"encryption-key": generated}
    assert read_storage(new, {"storage": "pbs1"})["encryption-key"] == "12:34"
    fresh, data = update_storage(new, {"storage": "pbs1", "encryption-key": "autogen"})
    assert "fingerprint" in json.loads(str(data["config"]["encryption-key"]))  # type: ignore[index]
    assert fresh.secrets["pbs1"].encryption_key != generated


def test_a_key_without_fingerprint_shows_as_1_and_keys_can_be_removed(state: StorageState) -> None:
    keyed, _ = update_storage(
        state,
        {"storage": "pbs1", "encryption-key": '{"data": "x"}', "master-pubkey": "QUJD"},
    )
    view = read_storage(keyed, {"storage": "pbs1"})
    assert (view["encryption-key"], view["master-pubkey"]) == ("1", "1")
    cleared, _ = update_storage(
        keyed, {"storage": "pbs1", "delete": "encryption-key,master-pubkey"}
    )
    view = read_storage(cleared, {"storage": "pbs1"})
    assert "encryption-key" not in view
    assert "master-pubkey" not in view
    assert cleared.secrets["pbs1"].encryption_key is None
    assert cleared.secrets["pbs1"].master_pubkey is None


def test_enabled_on_node_follows_disable_and_nodes() -> None:
    assert enabled_on_node({}, "pve1")
    assert not enabled_on_node({"disable": 1}, "pve1")
    assert enabled_on_node({"disable": 0}, "pve1")
    assert not enabled_on_node({"nodes": "pve2"}, "pve1")
    assert enabled_on_node({"nodes": "pve2,pve1"}, "pve1")


def test_the_other_writer_changes_bytes_not_meaning(state: StorageState) -> None:
    touched = touch_other_storage(state)
    assert touched.config.digest != state.config.digest
    before = {d["storage"]: set(split_list(str(d["content"]))) for d in list_storages(state, {})}
    after = {d["storage"]: set(split_list(str(d["content"]))) for d in list_storages(touched, {})}
    assert before == after
    single = StorageState.from_text("dir: local\n\tpath /var/lib/vz\n\tcontent iso\n\n")
    toggled = touch_other_storage(single)
    assert "\tshared 0\n" in toggled.config.text
    assert "shared" not in touch_other_storage(toggled).config.text


def test_a_hand_written_file_with_junk_keeps_only_what_pve_would_read() -> None:
    state = StorageState.from_text(
        "pbs: odd\n\tserver 10.0.0.1\n\tdatastore ds\n\tport http\n\tport 8007\n\tpath /x\n"
        "\tnamespace\n\tcontent backup,none\n\tmax-protected-backups 03\n\n"
        "pbs: broken\n\tserver 10.0.0.2\n\n"
    )
    assert [d["storage"] for d in list_storages(state, {})] == ["local", "odd"]
    view = read_storage(state, {"storage": "odd"})
    assert view["content"] == "backup"
    assert view["max-protected-backups"] == 3
    assert view["port"] == 8007  # the bad line is skipped, so the later one is no duplicate
    assert "path" not in view
    assert "namespace" not in view
    with pytest.raises(PveError):
        read_storage(state, {"storage": "broken"})


@pytest.mark.parametrize(
    ("text", "effective"),
    [
        ("", {"keep-all": 1}),
        ("keep-daily=0", {"keep-all": 1}),
        ("keep-all=yes", {"keep-all": 1}),
        ("keep-all=1,keep-daily=0", {"keep-all": 1}),
        ("keep-all=off,keep-last=3", {"keep-last": 3}),
    ],
)
def test_prune_backups_means_keep_all_when_nothing_positive_is_kept(
    text: str, effective: dict[str, int]
) -> None:
    assert parse_prune_backups(text) == effective


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("keep-daily", "value without key, but schema does not define a default key\n"),
        ("keep-daily=", "missing key in comma-separated list property\n"),
        ("keep-all=maybe", "format error\n"),
    ],
)
def test_prune_backups_syntax_errors_read_like_pves(text: str, message: str) -> None:
    with pytest.raises(PveError) as caught:
        parse_prune_backups(text)
    assert caught.value.message == message


def test_several_errors_for_one_key_are_joined_with_a_literal_backslash_n() -> None:
    with pytest.raises(PveError) as caught:
        validate({"a": "1"}, {})
    assert caught.value.errors == {"a": UNDEFINED}
    assert split_list("a, b;c\td") == ["a", "b", "c", "d"]
    assert split_list("a\0b c") == ["a", "b c"]
