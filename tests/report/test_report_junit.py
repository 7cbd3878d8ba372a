"""The JUnit writer on a file pytest really wrote (xunit1, properties inside each testcase), read
back with the product's one reader: suite and classnames named after the cluster, a failed
case's evidence in its system-out, and the strict form valid for the Jenkins xUnit schema."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from pbs_compliance.report import junit
from pbs_compliance.report.junit import case_key, evidence_text, finish_junit, read_junit

JUNIT_XSD = Path(__file__).resolve().parents[1] / "data" / "junit-10.xsd"

SUITE = """
import pytest

def _props(request, storage, check, node=""):
    request.node.user_properties += [("storage", storage), ("check", check)]
    if node:
        request.node.user_properties.append(("node", node))

@pytest.mark.parametrize("storage", ["archive", "offsite"])
def test_drift(request, storage):
    _props(request, storage, "drift")
    if storage == "offsite":
        pytest.fail("storage 'offsite' drifted\\nfix: run `pbs apply`", pytrace=False)

def test_nodes(request):
    _props(request, "offsite", "nodes", "pve2")
    pytest.skip("no entry in PVE (see the drift case)")
"""


@pytest.fixture
def written(pytester: pytest.Pytester) -> Path:
    """A JUnit file as pytest writes it for a compliance run (junit_family = xunit1)."""
    pytester.makeini("[pytest]\njunit_family = xunit1\n")
    pytester.makepyfile(test_pve=SUITE)
    path = pytester.path / "junit.xml"
    result = pytester.runpytest(
        f"--junitxml={path}", "-p", "no:pbs_compliance", "-p", "no:pbs_compliance_remediate"
    )
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    return path


EVIDENCE = {
    case_key("test_pve.py::test_drift[offsite]"): evidence_text(
        [("check", "drift"), ("storage", "offsite"), ("nodes", "pve1,pve2 -> pve1")],
        "run `pbs apply`",
    )
}


def test_by_default_properties_stay_in_each_testcase_and_a_failure_carries_its_evidence(
    written: Path,
) -> None:
    finish_junit(written, "site-a", EVIDENCE)

    cases = {c.id: c for c in read_junit(written)}
    assert {c.suite for c in cases.values()} == {"site-a"}
    assert {c.classname for c in cases.values()} == {"site-a.test_pve"}
    offsite = cases["drift[offsite]"]
    assert offsite.outcome == "failed"
    assert offsite.properties == {"storage": "offsite", "check": "drift"}
    assert offsite.system_out.splitlines() == [
        "check: drift",
        "storage: offsite",
        "nodes: pve1,pve2 -> pve1",
        "fix: run `pbs apply`",
    ]
    assert offsite.evidence["nodes"] == "pve1,pve2 -> pve1"
    # Passed and skipped cases get no evidence; their properties are inside the testcase.
    assert cases["drift[archive]"].system_out == ""
    assert cases["nodes"].outcome == "skipped"
    assert cases["nodes"].properties == {"storage": "offsite", "check": "nodes", "node": "pve2"}
    root = ET.parse(written).getroot()
    assert all(case.find("properties") is not None for case in root.iter("testcase"))
    assert "[[PROPERTY" not in written.read_text(encoding="utf-8")


def test_strict_mode_validates_against_the_jenkins_xunit_schema_and_keeps_the_data(
    written: Path,
) -> None:
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # what pytest writes does not
        xmlschema.validate(str(written), str(JUNIT_XSD))

    finish_junit(written, "site-a", EVIDENCE, strict=True)

    xmlschema.validate(str(written), str(JUNIT_XSD))
    cases = {c.id: c for c in read_junit(written)}
    assert cases["drift[offsite]"].properties == {"storage": "offsite", "check": "drift"}
    assert cases["drift[offsite]"].system_out.splitlines() == [
        "[[PROPERTY|storage=offsite]]",
        "[[PROPERTY|check=drift]]",
        "check: drift",
        "storage: offsite",
        "nodes: pve1,pve2 -> pve1",
        "fix: run `pbs apply`",
    ]
    assert cases["nodes"].properties["node"] == "pve2"
    assert {c.suite for c in cases.values()} == {"site-a"}


def test_two_clusters_reports_merge_without_clashing_case_ids(
    written: Path, tmp_path: Path
) -> None:
    other = tmp_path / "b.xml"
    other.write_bytes(written.read_bytes())

    finish_junit(written, "site-a", EVIDENCE)
    finish_junit(other, "site-b", EVIDENCE)

    merged = [*read_junit(written), *read_junit(other)]
    ids = [(c.suite, c.classname, c.name) for c in merged]
    assert len(set(ids)) == len(ids) == 6
    assert len({(c.classname, c.name) for c in merged}) == 6  # Jenkins' key: classname + name


def test_the_case_key_is_what_pytest_writes(written: Path) -> None:
    root = ET.parse(written).getroot()
    written_keys = {(c.get("classname"), c.get("name")) for c in root.iter("testcase")}

    assert case_key("test_pve.py::test_drift[offsite]") in written_keys
    assert case_key("sub/test_pve.py::test_nodes[a:b]", "ci") == (
        "ci.sub.test_pve",
        "test_nodes[a:b]",
    )


def test_the_evidence_text_is_one_line_per_fact() -> None:
    text = evidence_text([("subject", "CN=a,\n O=b"), ("valid", "x .. y")], "renew it\nthen")

    assert text.splitlines() == ["subject: CN=a, O=b", "valid: x .. y", "fix: renew it then"]


def test_a_waived_case_reads_as_waived(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    path.write_text(
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase classname="c" name="test_tls[a]"><properties>'
        '<property name="check" value="tls"/><property name="storage" value="a"/></properties>'
        '<skipped type="pytest.xfail" message="waived until 2030-01-01: ticket 7"/>'
        "</testcase></testsuite></testsuites>",
        encoding="utf-8",
    )

    (case,) = read_junit(path)
    assert (case.outcome, case.message) == ("waived", "waived until 2030-01-01: ticket 7")
    assert junit.INI_STRICT == "pbs_junit_strict_xunit"
