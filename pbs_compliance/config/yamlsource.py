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
    """The document as plain Python data plus a map from field path to (line, column)."""

    data: Any
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def mark(self, path: Path_) -> tuple[int | None, int | None]:
        """The closest known position of `path` (a missing key points at its parent mapping)."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found is not None:
                return found
        return (None, None)


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# libyaml's loader when PyYAML was built with it: the pure-Python one dominates the load time
# of a large file (the benchmark's 1,000 storages).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_RAW_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Aliases are expanded into plain data (each copy gets its own path and marks), so a few lines of
# nested aliases ("billion laughs") could otherwise build an enormous structure.
MAX_VALUES = 100_000


class _TooLarge(Exception):
    """Raised inside `_build` when alias expansion exceeds `MAX_VALUES`."""


def load_yaml(text: str, file: Path) -> Located:
    """Parse one YAML document; syntax problems come back as issues, never as exceptions."""
    located = Located(data=None)
    loader: yaml.SafeLoader | None = None
    try:
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
    except _TooLarge:
        located.data = None
        located.issues.append(
            ConfigIssue(
                file,
                None,
                None,
                "",
                f"the document expands to more than {MAX_VALUES} values (through aliases)",
                "write the storages out instead of nesting aliases",
            )
        )
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
        raise _TooLarge
    b.out.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if id(node) in b.active:
        b.issue(node, path, "an alias refers to itself", "remove the recursive `*alias`")
        return None
    if isinstance(node, yaml.ScalarNode):
        # YAML 1.1 reads `12:34:56` as a base-60 integer; a fingerprint or "host:port" must stay
        # text.
        if node.tag in _RAW_TAGS and ":" in node.value:
            return node.value
        return b.loader.construct_object(node, deep=True)
    b.active.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_build(item, (*path, i), b) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)
        return _build_mapping(node, path, b)
    finally:
        b.active.discard(id(node))


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
        result[key] = _build(value_node, (*path, key), b)
    return result
