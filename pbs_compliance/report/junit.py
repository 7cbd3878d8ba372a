"""The JUnit file: finished for the CI tools that read it after pytest writes it, and read back.

pytest writes each case's properties (storage, server, check, node, remediated, what plugins
add) as `<properties>` inside its `<testcase>` (`junit_family = xunit1`, as `checks/pytest.ini`
sets). `finish_junit` then, on the controller:

- names the `<testsuite>` after the cluster and prefixes every classname with it
  (`lab.test_pve`), so the reports of several clusters merge in one pipeline view without
  clashing cases, and a case keeps its classname + name from run to run (CI history);
- gives every failed case a plain-text evidence summary in its `<system-out>`, one
  `name: value` line per fact the HTML shows, then `fix: ...`: GitLab shows a failed case's
  system-out beside its failure text (it reads no properties), Jenkins' JUnit publisher shows
  both (with `keepProperties: true`).

Strict mode (`--junit-strict-xunit`, ini `pbs_junit_strict_xunit`) is for the Jenkins xUnit
plugin, which validates against `junit-10.xsd` (no properties inside a testcase, no `file` or
`line` attributes): the properties become `[[PROPERTY|name=value]]` lines at the top of the
case's `<system-out>` and those attributes go, so the file validates.

`read_junit` is the one reader of such a file (the demo's and the tests'), either mode.
"""

from __future__ import annotations

import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pbs_compliance.report import outcomes

PROPERTY = re.compile(r"\[\[PROPERTY\|([^=\]]+)=([^\]]*)\]\]")
# Attributes pytest's xunit1 family writes that junit-10.xsd does not allow on a testcase.
_NOT_IN_SCHEMA = ("file", "line", "url")
_OUTCOME = {"failure": outcomes.FAILED, "error": outcomes.ERROR, "skipped": outcomes.SKIPPED}
INI_STRICT = "pbs_junit_strict_xunit"
HELP_STRICT = (
    "JUnit for the Jenkins xUnit plugin's strict schema (junit-10.xsd): properties as "
    "[[PROPERTY|name=value]] lines in system-out, no file/line attributes"
)

Key = tuple[str, str]  # (classname as pytest writes it, name)


def case_key(nodeid: str, prefix: str | None = None) -> Key:
    """The (classname, name) pytest's junitxml writes for a node id (`mangle_test_address`)."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    classnames = names[:-1]
    if prefix:
        classnames.insert(0, prefix)
    return ".".join(classnames), names[-1]


def evidence_text(rows: Sequence[tuple[str, str]], fix: str = "") -> str:
    """A failed case's system-out: one `name: value` line per fact, then the fix."""
    lines = [f"{name}: {_one_line(value)}" for name, value in rows]
    if fix:
        lines.append(f"fix: {_one_line(fix)}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def finish_junit(
    path: Path,
    suite: str,
    evidence: Mapping[Key, str] | None = None,
    strict: bool = False,
    prefix_classnames: bool = True,
) -> None:
    """Rewrite pytest's JUnit file in place (atomically): see the module doc."""
    tree = ET.parse(path)  # noqa: S314 - our own file, just written by pytest
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for element in suites:
        element.set("name", suite)
    for case in root.iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        summary = (evidence or {}).get(key)
        if summary and _failed(case):
            _prepend_out(case, summary)
        if prefix_classnames and suite:
            case.set("classname", f"{suite}.{key[0]}" if key[0] else suite)
        if strict:
            _strict(case)
    _write(tree, path)


def _failed(case: ET.Element) -> bool:
    return case.find("failure") is not None or case.find("error") is not None


def _prepend_out(case: ET.Element, text: str) -> None:
    out = case.find("system-out")
    if out is None:
        out = ET.SubElement(case, "system-out")
        out.text = text
    else:
        out.text = text + ("\n" + out.text if out.text else "")


def _strict(case: ET.Element) -> None:
    for name in _NOT_IN_SCHEMA:
        case.attrib.pop(name, None)
    for props in case.findall("properties"):
        lines = [
            f"[[PROPERTY|{p.get('name')}={p.get('value')}]]" for p in props.findall("property")
        ]
        case.remove(props)
        if lines:
            _prepend_out(case, "\n".join(lines))


def _write(tree: ET.ElementTree[ET.Element], path: Path) -> None:
    """Write next to the file, then rename: a CI step never reads half a file."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        tree.write(temp, encoding="utf-8", xml_declaration=True)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def fix_junit(path: Path) -> None:
    """The strict form alone, suite and classnames untouched (kept for older callers)."""
    tree = ET.parse(path)  # noqa: S314 - our own file, just written by pytest
    for case in tree.getroot().iter("testcase"):
        _strict(case)
    _write(tree, path)


@dataclass(frozen=True)
class JUnitCase:
    """One `<testcase>` of a compliance run."""

    name: str  # the test's name with its parameters: "test_dns[archive]"
    outcome: str  # passed, failed, error, skipped, remediated, waived
    message: str = ""  # the failure's, error's or skip's `message` attribute
    text: str = ""  # the failure's or error's body (pytest's longrepr)
    properties: dict[str, str] = field(default_factory=dict)
    system_out: str = ""
    classname: str = ""
    suite: str = ""

    @property
    def storage(self) -> str:
        return self.properties.get("storage", self.name)

    @property
    def check(self) -> str:
        return self.properties.get("check", "")

    @property
    def node(self) -> str:
        return self.properties.get("node", "")

    @property
    def id(self) -> str:
        """The case id without pytest's `test_` prefix: "dns[archive]", "nodes[offsite:pve2]"."""
        return self.name.removeprefix("test_")

    @property
    def evidence(self) -> dict[str, str]:
        """The `name: value` lines of its system-out (a failed case's evidence and fix)."""
        found: dict[str, str] = {}
        for line in self.system_out.splitlines():
            name, sep, value = line.partition(": ")
            if sep and not PROPERTY.fullmatch(line.strip()):
                found.setdefault(name, value)
        return found


def read_junit(path: Path) -> tuple[JUnitCase, ...]:
    """Every case of a JUnit file our plugin wrote (or pytest alone wrote), in file order."""
    tree = ET.parse(path)  # noqa: S314 - written by our own pytest run
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return tuple(
        _case(element, suite.get("name", ""))
        for suite in suites
        for element in suite.findall("testcase")
    )


def _case(element: ET.Element, suite: str) -> JUnitCase:
    out = element.findtext("system-out") or ""
    props = dict(PROPERTY.findall(out))
    for prop in element.iter("property"):  # properties inside the testcase (the default)
        props[str(prop.get("name"))] = str(prop.get("value"))
    outcome, message, text = outcomes.PASSED, "", ""
    for tag, name in _OUTCOME.items():
        found = element.find(tag)
        if found is not None:
            outcome, message, text = name, found.get("message", ""), found.text or ""
            if tag == "skipped" and found.get("type") == "pytest.xfail":
                outcome = outcomes.WAIVED
            break
    if props.get("remediated") == "true":
        outcome = outcomes.REMEDIATED
    return JUnitCase(
        element.get("name", ""),
        outcome,
        message,
        text,
        props,
        out,
        element.get("classname", ""),
        suite,
    )
