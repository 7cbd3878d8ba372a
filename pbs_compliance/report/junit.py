"""The JUnit file: made valid for Jenkins' schema after pytest writes it, and read back.

Jenkins' schema (junit-10.xsd) has no `<properties>` inside `<testcase>`, which is where pytest
puts per-case properties; `fix_junit` moves them into the case's `<system-out>` as
`[[PROPERTY|name=value]]` lines, the form Jenkins' JUnit attachments plugin reads, so both the
schema and the data survive. `read_junit` is the one reader of such a file (the demo's and the
tests'): it accepts properties in either place.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

PROPERTY = re.compile(r"\[\[PROPERTY\|([^=\]]+)=([^\]]*)\]\]")
_OUTCOME = {"failure": "failed", "error": "error", "skipped": "skipped"}


def fix_junit(path: Path) -> None:
    tree = ET.parse(path)  # noqa: S314 - our own file, just written by pytest
    changed = False
    for case in tree.iter("testcase"):
        for props in case.findall("properties"):
            lines = [
                f"[[PROPERTY|{p.get('name')}={p.get('value')}]]" for p in props.findall("property")
            ]
            case.remove(props)
            out = case.find("system-out")
            if out is None:
                out = ET.SubElement(case, "system-out")
                out.text = ""
            out.text = "\n".join(lines) + ("\n" + out.text if out.text else "")
            changed = True
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class JUnitCase:
    """One `<testcase>` of a compliance run."""

    name: str  # the test's name with its parameters: "test_dns[archive]"
    outcome: str  # passed, failed, error, skipped, remediated
    message: str = ""  # the failure's, error's or skip's `message` attribute
    text: str = ""  # the failure's or error's body (pytest's longrepr)
    properties: dict[str, str] = field(default_factory=dict)
    system_out: str = ""

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


def read_junit(path: Path) -> tuple[JUnitCase, ...]:
    """Every case of a JUnit file our plugin wrote (or pytest alone wrote), in file order."""
    tree = ET.parse(path)  # noqa: S314 - written by our own pytest run
    return tuple(_case(element) for element in tree.iter("testcase"))


def _case(element: ET.Element) -> JUnitCase:
    out = element.findtext("system-out") or ""
    props = dict(PROPERTY.findall(out))
    for prop in element.iter("property"):  # in case the properties were left in place
        props[str(prop.get("name"))] = str(prop.get("value"))
    outcome, message, text = "passed", "", ""
    for tag, name in _OUTCOME.items():
        found = element.find(tag)
        if found is not None:
            outcome, message, text = name, found.get("message", ""), found.text or ""
            break
    if props.get("remediated") == "true":
        outcome = "remediated"
    return JUnitCase(element.get("name", ""), outcome, message, text, props, out)
