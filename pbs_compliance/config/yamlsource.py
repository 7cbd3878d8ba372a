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


_RAW_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


def load_yaml(text: str, file: Path) -> Located:
    """Parse one YAML document; syntax problems come back as issues, never as exceptions."""
    located = Located(data=None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            located.data = _build(node, (), loader, located, file)
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
    except yaml.YAMLError as exc:  # unmarked errors, e.g. a reader error on control characters
        located.issues.append(
            ConfigIssue(file, None, None, "", f"YAML error: {exc}", "the file must be plain YAML")
        )
    finally:
        loader.dispose()
    return located


def _build(node: yaml.Node, path: Path_, loader: yaml.SafeLoader, out: Located, file: Path) -> Any:
    out.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _scalar_key(key_node, loader)
            if key is None:
                out.issues.append(
                    ConfigIssue(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path(path),
                        "mapping keys must be plain text",
                        "write the key as a simple word such as `server`",
                    )
                )
                continue
            if key in seen:
                out.issues.append(
                    ConfigIssue(
                        file,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        format_path((*path, key)),
                        f"duplicate key `{key}` (first given on line {seen[key]})",
                        "keep one of the two; YAML would silently use the last one",
                    )
                )
                continue
            seen[key] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), loader, out, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), loader, out, file) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    # YAML 1.1 reads `12:34:56` as a base-60 integer; a fingerprint or "host:port" must stay text.
    if node.tag in _RAW_TAGS and ":" in node.value:
        return node.value
    return loader.construct_object(node, deep=True)


def _scalar_key(node: yaml.Node, loader: yaml.SafeLoader) -> str | None:
    if not isinstance(node, yaml.ScalarNode):
        return None
    value = loader.construct_object(node, deep=True)
    if isinstance(value, bool | int | float | str):
        return str(value)
    return None
