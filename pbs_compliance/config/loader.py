"""Load a config file: YAML -> located data -> interpolation, defaults, secrets -> typed model.

Every step appends to one list of issues instead of raising, so the user sees all problems of the
file at once; only at the end is a single `ConfigError` raised.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from pbs_compliance.config.errors import ConfigError, ConfigIssue
from pbs_compliance.config.files import (
    MAX_CONFIG_BYTES,
    MAX_SECRET_BYTES,
    FileProblem,
    TooLarge,
    check_ca_file,
    read_regular,
    size_text,
)
from pbs_compliance.config.model import (
    BackupHealth,
    ComplianceConfig,
    CoverageSettings,
    DnsSettings,
    JobSettings,
    PruneBackups,
    PveSettings,
    StorageSpec,
)
from pbs_compliance.config.waiver_model import load_waivers
from pbs_compliance.config.yamlsource import Located, Path_, format_path, load_yaml

M = TypeVar("M", bound=BaseModel)

_VAR_RE = re.compile(r"\$\$|\$\{([^}]*)\}")
# Patterns are full-matched: `$` would also match before a final newline.
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

TOP_KEYS = ("pbs_storages", "pve", "dns", "defaults", "coverage", "jobs", "waivers")
# Secret fields: (where, field, its *_file sibling, the environment variable we suggest).
_STORAGE_SECRET = ("password", "password_file")
_PVE_SECRETS = (("token_secret", "token_secret_file"), ("password", "password_file"))
_MAX_SECRET = MAX_SECRET_BYTES
_UNRESOLVED = SecretStr("")
_TRUE_WORDS = frozenset({"yes", "true", "on", "1"})
_FALSE_WORDS = frozenset({"no", "false", "off", "0"})
_INT_RE = re.compile(r"[-+]?[0-9]{1,30}")
_FLOAT_RE = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> ComplianceConfig:
    """Load and validate `path`; raise `ConfigError` listing every problem."""
    file = Path(path)
    env = os.environ if environ is None else environ
    try:
        # Regular files only, and bounded: `--config /dev/stdin` would wait forever.
        raw = read_regular(file, MAX_CONFIG_BYTES)
    except TooLarge as exc:
        raise ConfigError([_too_large_issue(file, exc.size)]) from None
    except FileProblem as exc:
        if exc.errno == errno.ENOENT:
            issue = ConfigIssue(file, None, None, "", "file not found", _hint_missing(file))
        else:
            issue = ConfigIssue(file, None, None, "", f"cannot read: {exc.reason}", exc.fix)
        raise ConfigError([issue]) from None
    return parse_config(raw, file, env)


def _too_large_issue(file: Path, size: int) -> ConfigIssue:
    return ConfigIssue(
        file,
        None,
        None,
        "",
        f"the file is {size_text(size)}; a config file may be at most "
        f"{size_text(MAX_CONFIG_BYTES)} (1,000 storages take about 350 KiB)",
        "check that this is the config file; split a fleet that large by cluster",
    )


def _hint_missing(file: Path) -> str:
    return (
        f"create {file} (see config/pbs-storage.example.yaml) or pass --config/--pbs-config; "
        "`pbs lab serve` writes one for the lab"
    )


def parse_config(raw: bytes, file: Path, environ: Mapping[str, str]) -> ComplianceConfig:
    """Validate the bytes of a config file; `file` is only used to name it and resolve paths."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([_too_large_issue(file, len(raw))])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - before.rfind(b"\n")  # 1-based; rfind is -1 on line 1
        raise ConfigError(
            [
                ConfigIssue(
                    file,
                    line,
                    column,
                    "",
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                    "save the file as UTF-8",
                )
            ]
        ) from None
    located = load_yaml(text, file)  # YAML skips a byte order mark itself
    loader = _Loader(file, located, environ)
    config = loader.run()
    if loader.issues or config is None:
        raise ConfigError(loader.issues)
    return config


class _Loader:
    def __init__(self, file: Path, located: Located, environ: Mapping[str, str]) -> None:
        self.file = file
        self.located = located
        self.environ = environ
        self.issues: list[ConfigIssue] = list(located.issues)
        # Paths whose `${VAR}` could not be resolved, or whose value could not be read (a number
        # too long, a date that is none): already reported, so the validation error about the
        # same value that follows would only be noise.
        self.unresolved: set[Path_] = set(located.invalid)

    def issue(self, path: Path_, message: str, fix: str) -> None:
        """A problem with the value at `path`: located at the value."""
        line, column = self.located.mark(path)
        self.issues.append(ConfigIssue(self.file, line, column, format_path(path), message, fix))

    def key_issue(self, path: Path_, message: str, fix: str) -> None:
        """A problem with the key of `path` itself (unknown, misplaced): located at the key."""
        line, column = self.located.key_mark(path)
        self.issues.append(ConfigIssue(self.file, line, column, format_path(path), message, fix))

    # -- the steps ---------------------------------------------------------------------------

    def run(self) -> ComplianceConfig | None:
        data = self.located.data
        if self.issues and data is None:  # a syntax error: nothing to validate
            return None
        if data is None:
            self.issue((), "the file is empty", "declare at least `pbs_storages:` (a list)")
            return None
        if not isinstance(data, dict):
            self.issue((), "the top level must be a mapping", "start with `pbs_storages:`")
            return None
        self._unknown_keys((), data, TOP_KEYS)
        storages = data.get("pbs_storages")
        if "pbs_storages" not in data:
            self.issue((), "missing `pbs_storages`", "add `pbs_storages:` with a list of entries")
            storages = []
        elif storages is None:
            self.issue(
                ("pbs_storages",),
                "`pbs_storages` is empty",
                "list the entries below it as `- name: ...`, or write `pbs_storages: []`",
            )
            storages = []
        elif not isinstance(storages, list):
            self.issue(("pbs_storages",), "must be a list of storage entries", "use `- name: ...`")
            storages = []
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            self.issue(("defaults",), "must be a mapping of field defaults", "e.g. `port: 8007`")
            defaults = {}
        if "name" in defaults:
            self.key_issue(
                ("defaults", "name"),
                "`name` cannot have a default",
                "every storage needs its own name; remove it from `defaults:`",
            )
            defaults = {k: v for k, v in defaults.items() if k != "name"}
        default_fields = [k for k in StorageSpec.model_fields if k != "name"] + ["password_file"]
        self._unknown_keys(("defaults",), defaults, default_fields)

        pve = self._pve(data.get("pve"))
        dns = self._section(("dns",), data.get("dns"), DnsSettings)
        coverage = self._section(
            ("coverage",), data.get("coverage"), CoverageSettings, "e.g. `exclude: [9000]`"
        )
        jobs = self._section(("jobs",), data.get("jobs"), JobSettings, "e.g. `slack: 2h`")
        specs: list[StorageSpec] = []
        first_seen: dict[str, int] = {}
        for index, entry in enumerate(storages):
            spec = self._storage(index, entry, defaults)
            # The validated name when there is one: `${VAR}` names are compared after expansion.
            name = spec.name if spec is not None else _raw_name(entry)
            if name is not None and name in first_seen:
                line = self.located.mark(("pbs_storages", first_seen[name]))[0]
                self.issue(
                    ("pbs_storages", index, "name"),
                    f"duplicate storage name `{name}` (first declared on line {line})",
                    "storage names are PVE storage IDs and must be unique",
                )
                continue
            if name is not None:
                first_seen[name] = index
            if spec is not None:
                specs.append(spec)
        nodes = {spec.name: spec.nodes for spec in specs}
        waivers = load_waivers(self, data.get("waivers"), first_seen, nodes)
        # A section that is None has been reported; `parse_config` raises on any issue.
        if pve is None or dns is None or coverage is None or jobs is None:
            return None
        return ComplianceConfig(
            source=self.file,
            pve=pve,
            dns=dns,
            storages=tuple(specs),
            coverage=coverage,
            jobs=jobs,
            waivers=waivers or (),
        )

    def _storage(self, index: int, entry: Any, defaults: dict[str, Any]) -> StorageSpec | None:
        path: Path_ = ("pbs_storages", index)
        if not isinstance(entry, dict):
            self.issue(path, "each storage must be a mapping", "start the entry with `- name: ...`")
            return None
        merged: dict[str, Any] = {}
        origin: dict[str, Path_] = {}
        for key, value in defaults.items():
            merged[key] = value
            origin[key] = ("defaults", key)
        for key, value in entry.items():
            merged[key] = value
            origin[key] = (*path, key)
        allowed = [*StorageSpec.model_fields, "password_file"]
        self._unknown_keys(path, entry, allowed)
        merged = {k: v for k, v in merged.items() if k in allowed}
        nested = self._merge_backups(merged, origin, defaults, entry, path)
        # A password under `defaults:` is shared, so is the variable we suggest for it.
        hint = _env_name(entry) if "password" in entry else "PBS_PASSWORD"
        self._secret(merged, origin, *_STORAGE_SECRET, env_hint=hint)
        if isinstance(merged.get("prune_backups"), dict):
            self._unknown_keys(
                origin["prune_backups"], merged["prune_backups"], list(PruneBackups.model_fields)
            )
        return self._validate(
            StorageSpec, merged, lambda loc: _origin_path(_moved(loc, nested), origin, path)
        )

    def _merge_backups(
        self,
        merged: dict[str, Any],
        origin: dict[str, Path_],
        defaults: dict[str, Any],
        entry: dict[str, Any],
        path: Path_,
    ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """`backups:` is merged key by key: a storage that sets `max_age` keeps the default
        `max_used_percent`. Returns where each merged key came from (for error locations)."""
        nested: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        known = list(BackupHealth.model_fields)
        for where, source in ((("defaults", "backups"), defaults), ((*path, "backups"), entry)):
            if isinstance(source.get("backups"), dict):
                self._unknown_keys(where, source["backups"], known)
        shared, own = defaults.get("backups"), entry.get("backups")
        if not (isinstance(shared, dict) and isinstance(own, dict)):
            return nested
        merged["backups"] = {**shared, **own}
        for key in shared:
            if key not in own:  # located under `defaults:`, where it was written
                nested[("backups", key)] = ("_defaults_backups", key)
        origin["_defaults_backups"] = ("defaults", "backups")
        return nested

    def _pve(self, section: Any) -> PveSettings | None:
        path: Path_ = ("pve",)
        if section is None:
            return PveSettings()
        if not isinstance(section, dict):
            self.issue(path, "must be a mapping", "e.g. `url: https://pve1.example:8006`")
            return None
        allowed = [*PveSettings.model_fields, "token_secret_file", "password_file"]
        self._unknown_keys(path, section, allowed)
        values = {k: v for k, v in section.items() if k in allowed}
        origin: dict[str, Path_] = {k: (*path, k) for k in values}
        for field, file_field in _PVE_SECRETS:
            self._secret(values, origin, field, file_field, env_hint=f"PVE_{field.upper()}")
        if isinstance(values.get("ca_file"), str):
            ca_file = self._ca_file(values.pop("ca_file"), origin["ca_file"])
            if ca_file is None:  # reported; the other settings are still validated
                self._validate(PveSettings, values, lambda loc: _origin_path(loc, origin, path))
                return None
            values["ca_file"] = ca_file
        return self._validate(PveSettings, values, lambda loc: _origin_path(loc, origin, path))

    def _ca_file(self, value: str, where: Path_) -> Path | None:
        """The CA bundle for PVE's certificate: found, readable and PEM now, not at the first
        request (where requests would only say "Could not find a suitable TLS CA bundle")."""
        expanded = self._interpolate(value, where)
        ca_file = None if expanded is None else self._relative(expanded, where)
        if ca_file is None:
            return None
        try:
            check_ca_file(ca_file)
        except FileProblem as exc:
            self.issue(where, exc.describe("CA file", ca_file), _ca_fix(exc))
            return None
        return ca_file

    def _section(
        self,
        path: Path_,
        section: Any,
        model: type[M],
        example: str = "e.g. `nameservers: [192.0.2.53]`",
    ) -> M | None:
        if section is None:
            return model()
        if not isinstance(section, dict):
            self.issue(path, "must be a mapping", example)
            return None
        self._unknown_keys(path, section, list(model.model_fields))
        values = {k: v for k, v in section.items() if k in model.model_fields}
        return self._validate(model, values, lambda loc: (*path, *loc))

    # -- helpers -----------------------------------------------------------------------------

    def _unknown_keys(self, path: Path_, mapping: dict[str, Any], allowed: Any) -> None:
        allowed = list(allowed)
        for key in mapping:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed)  # best first, cutoff 0.6
            fix = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(allowed)}"
            self.key_issue((*path, key), f"unknown key `{key}`", fix)

    def _relative(self, value: str, where: Path_) -> Path | None:
        """`value` as a path; relative paths are relative to the config file's directory."""
        if "\x00" in value:
            self.issue(where, "a path cannot contain a NUL character", "write a plain file path")
            return None
        try:
            candidate = Path(value).expanduser()
        except RuntimeError:  # `~user/...` for an unknown user, or no home directory
            self.issue(where, f"cannot expand `~` in {value}", "write the full path")
            return None
        return self.file.parent / candidate  # an absolute candidate replaces the parent

    def _secret(
        self,
        values: dict[str, Any],
        origin: dict[str, Path_],
        field: str,
        file_field: str,
        env_hint: str,
    ) -> None:
        """Resolve a secret from `${ENV}` or a file; a literal secret is an error, never used."""
        literal = values.pop(field, None)
        secret_file = values.pop(file_field, None)
        if literal is None and secret_file is None:
            return
        if literal is not None and secret_file is not None:
            self.issue(
                origin[file_field],
                f"both `{field}` and `{file_field}` are given",
                "keep one of them",
            )
            values[field] = _UNRESOLVED
            return
        if secret_file is None:
            secret = self._env_secret(literal, origin[field], field, file_field, env_hint)
        else:
            secret = self._file_secret(secret_file, origin[file_field])
        # Reported when None; a stand-in keeps the model from adding "`token_id` is given without
        # `token_secret`". With issues, no config is returned, so it never leaks. (No error is
        # ever located at a SecretStr, so `origin` needs no entry for the resolved field.)
        values[field] = _UNRESOLVED if secret is None else secret

    def _env_secret(
        self, literal: Any, where: Path_, field: str, file_field: str, env_hint: str
    ) -> SecretStr | None:
        """The secret `${NAME}` names (None, reported, when there is none or it is no secret)."""
        match = _REFERENCE_RE.fullmatch(literal) if isinstance(literal, str) else None
        if match is None:
            self.issue(
                where,
                "a literal secret does not belong in the config file",
                f"move it into the environment and write `{field}: ${{{env_hint}}}`, "
                f"or into a file readable only by you and write `{file_field}: /path`",
            )
            return None
        name = match.group(1)
        if name not in self.environ:
            self.issue(where, f"environment variable `{name}` is not set", f"export {name}=...")
            return None
        if not self.environ[name]:
            self.issue(where, f"environment variable `{name}` is empty", f"export {name}=...")
            return None
        flaw = _secret_flaw(self.environ[name])
        if flaw:
            self.issue(
                where,
                f"the value of environment variable `{name}` {flaw}",
                f"export {name} without it (`$(cat FILE)` drops a final newline)",
            )
            return None
        return SecretStr(self.environ[name])

    def _file_secret(self, secret_file: Any, where: Path_) -> SecretStr | None:
        """The secret in the file `secret_file` names (None, reported, when it cannot be)."""
        if not isinstance(secret_file, str):
            self.issue(where, "must be a file path", "e.g. `/etc/pbs-compliance/pbs.pw`")
            return None
        expanded = self._interpolate(secret_file, where)
        target = None if expanded is None else self._relative(expanded, where)
        if target is None:
            return None
        try:
            # A regular file (a FIFO would block), private (as ssh wants a key), bounded.
            data = read_regular(target, _MAX_SECRET, private=True)
        except TooLarge as exc:
            self.issue(
                where, exc.describe("secret file", target), "the file must hold only the secret"
            )
            return None
        except FileProblem as exc:
            self.issue(where, exc.describe("secret file", target), exc.fix)
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            self.issue(where, f"cannot read secret file {target}: not UTF-8", "check the path")
            return None
        # One final line break is how editors and `echo` end a file; it is not the secret's.
        secret = text.removesuffix("\n").removesuffix("\r")
        if not secret:
            self.issue(where, f"secret file {target} is empty", "write the secret into it")
            return None
        flaw = _secret_flaw(secret)
        if flaw:
            lines = len(text.splitlines())
            what = f"holds {lines} lines" if lines > 1 else flaw
            self.issue(
                where,
                f"secret file {target} {what}; it must hold only the secret, on one line",
                "write just the secret into it (one final newline is fine)",
            )
            return None
        return SecretStr(secret)

    def _interpolate(self, value: str, path: Path_) -> str | None:
        missing: list[str] = []

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group(1)
            if not _NAME_RE.fullmatch(name):
                missing.append(f"`${{{name}}}` is not a valid variable reference")
                return ""
            if name not in self.environ:
                missing.append(f"environment variable `{name}` is not set")
                return ""
            return self.environ[name]

        result = _VAR_RE.sub(replace, value)
        for message in missing:
            self.issue(path, message, "export it before running, or write the value directly")
        return None if missing else result

    def _interpolate_tree(self, value: Any, path: Path_, annotation: Any = None) -> Any:
        """Expand `${VAR}` in every string below `value`; lists become tuples.

        Environment variables are text, but `port: ${PBS_PORT}` should still give a number: an
        expanded string is converted when the field it fills (`annotation`) is a bool, an int or
        a float, by the rules YAML would have applied to the same text in the file (booleans also
        take `1`/`0`, as environment variables often do).
        """
        if isinstance(value, str):
            result = self._interpolate(value, path)
            if result is None:
                self.unresolved.add(path)
                return value
            return _coerce(result, annotation) if result != value else result
        if isinstance(value, dict):
            fields = _model_fields(annotation)
            return {
                k: self._interpolate_tree(v, (*path, k), fields.get(k)) for k, v in value.items()
            }
        if isinstance(value, list):
            return tuple(self._interpolate_tree(v, (*path, i)) for i, v in enumerate(value))
        return value

    def _validate(self, model: type[M], values: dict[str, Any], locate: Any) -> M | None:
        prepared: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, SecretStr | Path):
                prepared[key] = value
            else:
                # Every caller passes only the model's own fields (unknown keys are reported).
                annotation = model.model_fields[key].annotation
                prepared[key] = self._interpolate_tree(value, locate((key,)), annotation)
        try:
            return model.model_validate(prepared)
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] == "extra_forbidden":  # reported by _unknown_keys, with a hint
                    continue
                loc = tuple(part for part in error["loc"] if not isinstance(part, str) or part)
                path = locate(loc)
                if any(path[: len(done)] == done for done in self.unresolved):
                    continue  # at or below a value already reported
                self.issue(path, _message(error), _fix(error))
            return None


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]`, `X | None` and combinations of the two -> X (None if ambiguous)."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            annotation = options[0] if len(options) == 1 else None
        else:
            return annotation


def _scalar_type(annotation: Any) -> type | None:
    """bool, int or float when a field's annotation is one of them (maybe optional)."""
    annotation = _unwrap(annotation)
    return annotation if annotation in (bool, int, float) else None


def _model_fields(annotation: Any) -> dict[str, Any]:
    """The field annotations of a nested model field such as `prune_backups`."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: info.annotation for name, info in annotation.model_fields.items()}
    return {}


def _coerce(text: str, annotation: Any) -> Any:
    """An expanded `${VAR}` for a bool/int/float field, read as YAML would read it."""
    kind = _scalar_type(annotation)
    word = text.strip()
    if kind is bool and word.lower() in _TRUE_WORDS | _FALSE_WORDS:
        return word.lower() in _TRUE_WORDS
    if kind is int and _INT_RE.fullmatch(word):
        return int(word)
    if kind is float and _FLOAT_RE.fullmatch(word) and len(word) <= 64:
        return float(word)
    return text  # the model reports the type error, showing the expanded text


def _secret_flaw(secret: str) -> str:
    """Why a secret cannot be what it says ("" when it can): a line break or control character.

    PVE writes a storage password into a file of its own, line by line, and sends a token secret
    in an HTTP header; either breaks on such a character. Never shows the secret.
    """
    if "\n" in secret or "\r" in secret:
        return "contains a line break"
    found = _CONTROL_RE.search(secret)
    if found:
        return f"contains the control character U+{ord(found.group()):04X}"
    return ""


def _ca_fix(problem: FileProblem) -> str:
    if "PEM" in problem.reason:
        return problem.fix
    return (
        "copy the CA certificate of the PVE cluster (/etc/pve/pve-root-ca.pem on any PVE node) "
        "to this machine and name that copy (a relative path is relative to the config file), "
        "or remove `ca_file` to trust the system's CAs"
    )


def _raw_name(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def _moved(loc: tuple[Any, ...], nested: Mapping[tuple[Any, ...], tuple[Any, ...]]) -> Any:
    """A location inside a merged mapping, moved to where its key was written."""
    head = loc[:2]
    return (*nested[head], *loc[2:]) if head in nested else loc


def _origin_path(loc: tuple[Any, ...], origin: dict[str, Path_], base: Path_) -> Path_:
    if loc and isinstance(loc[0], str) and loc[0] in origin:
        return (*origin[loc[0]], *loc[1:])
    return (*base, *loc)


def _env_name(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    stem = re.sub(r"[^A-Za-z0-9]+", "_", name).upper() if isinstance(name, str) else "STORAGE"
    return f"PBS_{stem}_PASSWORD"


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"])  # a validator's ValueError, always in `ctx`
    if kind == "literal_error":
        return f"{_short(error['input'])} is not allowed; {error['msg'].lower()}"
    return f"{error['msg']} (got {_short(error.get('input'))})"


_FIXES = {
    "string_type": "write it as text; put quotes around values like 007 or 12:34",
    "int_type": "write a whole number, e.g. `8007`, without quotes",
    "float_type": "write a number without quotes, e.g. `10`",
    "bool_type": "write `true` or `false` without quotes",
    "tuple_type": "write a list, e.g. `[a, b]` or one `- item` per line",
    "dict_type": "write a mapping of `key: value` lines below it",
    "model_type": "write a mapping of `key: value` lines below it",
}
# The bounds the model's fields have (`Field(ge=..., gt=..., le=...)`; none has `lt`).
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}


def _fix(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"add `{error['loc'][-1]}:`"
    if kind == "value_error" and error["loc"][:1] in (("slack",), ("max_age",)):  # `jobs:`
        if "duration" in str(error["ctx"]["error"]):
            return "write a whole number and a unit (s, m, h, d or w), e.g. `2h`, `26h` or `8d`"
        return "copy the job's ID from `pvesh get /cluster/backup` (or Datacenter > Backup)"
    if kind == "value_error" and error["loc"][-1:] in (("max_age",), ("verify_max_age",)):
        return "write a whole number and a unit (s, m, h, d or w), e.g. `26h`, `36h` or `7d`"
    if kind == "literal_error" and "skip" in error["loc"]:
        return "`skip` lists the health checks to turn off: datastore, capacity, backups, verified"
    if kind == "literal_error" and "backup" in error["msg"]:
        return "PBS storages hold only `backup` (or `none`); PVE turns anything else into `none`"
    if kind in _BOUNDS:  # one bound per error, its limit alone in `ctx`: {"ge": 1}
        (limit,) = error["ctx"].values()
        return f"use a value {_BOUNDS[kind]} {limit}"
    return _FIXES.get(kind, "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
