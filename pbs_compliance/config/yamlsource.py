"""Read a YAML file into plain data while remembering where every value came from.

PyYAML's composer gives nodes with marks; constructing the data ourselves from those nodes lets us
(1) point every later validation error at a line and column, and (2) reject duplicate keys, which
PyYAML would otherwise resolve silently by keeping the last one - a classic source of "I changed
it and nothing happened".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pbs_compliance.config.errors import ConfigIssue

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """The document as plain Python data plus where each field's key and value are written.

    An error about a key (unknown, duplicate) points at the key; an error about a value at the
    value. A value that is a mapping or a list, or left empty, starts on another line than its key
    or nowhere at all, so an error about it as a whole points at its key, the line that names it.
    """

    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # where values start
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # where mapping keys are
    wholes: set[Path_] = field(default_factory=set)  # values that are collections or empty
    invalid: set[Path_] = field(default_factory=set)  # values reported while reading them
    issues: list[ConfigIssue] = field(default_factory=list)

    def mark(self, path: Path_) -> tuple[int | None, int | None]:
        """Where the value of `path` is (a missing key points into its parent mapping)."""
        if path in self.wholes and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return (None, None)

    def key_mark(self, path: Path_) -> tuple[int | None, int | None]:
        """Where the key of `path` is written (the value's place for a list item)."""
        found = self.keys.get(path)
        return found if found is not None else self.mark(path)


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# libyaml's loader when PyYAML was built with it: the pure-Python one dominates the load time
# of a large file (the benchmark's 1,000 storages).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT_TAG = "tag:yaml.org,2002:int"
_RAW_TAGS = {_INT_TAG, "tag:yaml.org,2002:float"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
# A bound on the values of a document: a config of 1,000 storages has about 20,000. Counted while
# parsing, before PyYAML builds a node for each (1 M values take seconds and hundreds of MB), and
# again while building, because aliases are expanded into plain data (each copy gets its own path
# and marks): a few lines of nested aliases ("billion laughs") could build an enormous structure.
MAX_VALUES = 100_000
# No setting takes a longer number (a port has 5 digits); Python refuses to convert an integer of
# more than 4,300 digits, and converting a long one costs time quadratic in its length.
MAX_NUMBER_CHARS = 32


class _TooLarge(Exception):
    """Raised when the document has, or expands to, more than `MAX_VALUES` values."""

    def __init__(self, through_aliases: bool) -> None:
        super().__init__()
        self.through_aliases = through_aliases


def _count_values(text: str) -> None:
    """Raise `_TooLarge` when the document as written has more than `MAX_VALUES` values."""
    if len(text) <= MAX_VALUES:  # each value takes at least one character
        return
    events = yaml.parse(text, Loader=_LOADER)
    try:
        count = 0
        for event in events:
            if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                count += 1
                if count > MAX_VALUES:
                    raise _TooLarge(through_aliases=False)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # disposes of the parser


def load_yaml(text: str, file: Path) -> Located:
    """Parse one YAML document; syntax problems come back as issues, never as exceptions."""
    located = Located(data=None)
    loader: yaml.SafeLoader | None = None
    try:
        _count_values(text)
        loader = _LOADER(text)  # checks every character already
        node = loader.get_single_node()
        if node is not None:
            located.data = _build(node, (), _Builder(loader, located, file))
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        located.data = None
        located.issues.append(
            ConfigIssue(
                file,
                None,
                None,
                "",
                "the document is nested too deeply",
                "a config file needs only a few levels of nesting; check for runaway brackets",
            )
        )
    except _TooLarge as exc:
        located.data = None
        if exc.through_aliases:
            message = f"the document expands to more than {MAX_VALUES} values through aliases"
            fix = "write the storages out instead of nesting aliases (`*name`)"
        else:
            message = (
                f"the document has more than {MAX_VALUES} values; a config of 1,000 storages "
                "has about 20,000"
            )
            fix = "check that this is the right file; split a fleet that large by cluster"
        located.issues.append(ConfigIssue(file, None, None, "", message, fix))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        located.issues.append(
            ConfigIssue(
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                field="",
                message=f"YAML syntax error: {problem}{context}",
                fix="check indentation, quoting and that lists use '- ' items",
            )
        )
    except yaml.reader.ReaderError as exc:  # control characters: no mark, but a position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        located.issues.append(
            ConfigIssue(
                file,
                line,
                column,
                "",
                f"control character U+{exc.character:04X} is not allowed in YAML",
                "the file must be plain text; remove control characters",
            )
        )
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is one of the above
        located.issues.append(
            ConfigIssue(file, None, None, "", f"YAML error: {exc}", "the file must be plain YAML")
        )
    finally:
        if loader is not None:
            loader.dispose()
    return located


@dataclass
class _Builder:
    loader: yaml.SafeLoader
    out: Located
    file: Path
    active: set[int] = field(default_factory=set)  # nodes being built: a recursive alias
    count: int = 0

    def issue(self, node: yaml.Node, path: Path_, message: str, fix: str) -> None:
        mark = node.start_mark
        self.out.issues.append(
            ConfigIssue(self.file, mark.line + 1, mark.column + 1, format_path(path), message, fix)
        )


def _build(node: yaml.Node, path: Path_, b: _Builder) -> Any:
    b.count += 1
    if b.count > MAX_VALUES:
        raise _TooLarge(through_aliases=True)
    b.out.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if not isinstance(node, yaml.ScalarNode) or (node.value == "" and not node.style):
        b.out.wholes.add(path)
    if id(node) in b.active:
        b.issue(node, path, "an alias refers to itself", "remove the recursive `*alias`")
        return None
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node, path, b)
    b.active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_build(item, (*path, i), b) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        return _build_mapping(node, path, b)
    finally:
        b.active.discard(id(node))


def _scalar(node: yaml.ScalarNode, path: Path_, b: _Builder) -> Any:
    # YAML 1.1 reads `12:34:56` as a base-60 integer; a fingerprint or "host:port" must stay text.
    if node.tag in _RAW_TAGS and ":" in node.value:
        return node.value
    if node.tag == _INT_TAG and len(node.value) > MAX_NUMBER_CHARS:
        b.out.invalid.add(path)
        b.issue(
            node,
            path,
            f"a number of {len(node.value):,} characters is longer than any setting takes "
            f"(at most {MAX_NUMBER_CHARS})",
            "write the intended number (a port is 1 to 65535), or quote the value if it is text",
        )
        return node.value
    try:
        return b.loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:  # `2024-13-45` looks like a date, is none
        b.out.invalid.add(path)
        b.issue(
            node,
            path,
            f"{_shown(node.value)} reads as a {node.tag.rsplit(':', 1)[-1]} but is not a valid "
            f"one ({exc})",
            "correct it, or put quotes around it to keep it as text",
        )
        return node.value


def _shown(text: str) -> str:
    return ascii(text) if len(text) <= 60 else ascii(text[:57]) + "..."


def _build_mapping(node: yaml.MappingNode, path: Path_, b: _Builder) -> dict[str, Any]:
    result: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            b.issue(
                key_node,
                path,
                "YAML merge keys (`<<: *anchor`) are not supported",
                "put values shared by every storage under `defaults:`, or write the keys out",
            )
            continue
        if not isinstance(key_node, yaml.ScalarNode) or not key_node.value:
            b.issue(
                key_node,
                path,
                "mapping keys must be plain text",
                "write the key as a simple word such as `server`",
            )
            continue
        # The key as written: `yes:` is the key "yes", not the boolean YAML 1.1 would make of it.
        key = key_node.value
        if key in seen:
            b.issue(
                key_node,
                (*path, key),
                f"duplicate key `{key}` (first given on line {seen[key]})",
                "keep one of the two; YAML would silently use the last one",
            )
            continue
        seen[key] = key_node.start_mark.line + 1
        b.out.keys[(*path, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        result[key] = _build(value_node, (*path, key), b)
    return result
