"""Site rule: every PBS storage's datastore name starts with this site's prefix.

A site-specific check, in its own module: copy it into `checks/` and it runs with the others,
with its own marker (`pytest checks/ -m site_prefix`), column in the matrix, evidence table in
the HTML report and cases in JUnit. The prefix comes from the environment:

    PBS_SITE_PREFIX=homelab pytest checks/
"""

from __future__ import annotations

import os

from pbs_compliance.api import Compliance, StorageSpec, Verdict, check

PREFIX_VARIABLE = "PBS_SITE_PREFIX"


def site_prefix(spec: StorageSpec, prefix: str) -> Verdict:
    """The judgement, a pure function of the declaration: easy to unit-test without a lab."""
    if not prefix:
        return Verdict(
            "site_prefix", spec.name, "skip", f"{PREFIX_VARIABLE} is not set: no prefix to check"
        )
    facts = (("datastore", spec.datastore), ("site prefix", prefix))
    if spec.datastore.startswith(prefix):
        return Verdict("site_prefix", spec.name, "pass", facts=facts)
    return Verdict(
        "site_prefix",
        spec.name,
        "fail",
        f"the datastore '{spec.datastore}' of '{spec.name}' does not start with the site "
        f"prefix '{prefix}'\nfix: rename the datastore on {spec.server}, or correct "
        f"{PREFIX_VARIABLE}",
        facts,
    )


@check("site_prefix", "every storage's datastore name starts with the site prefix")
def test_site_prefix(pbs_storage: StorageSpec, pbs: Compliance) -> None:
    """The storage's datastore name starts with $PBS_SITE_PREFIX."""
    pbs.check(site_prefix(pbs_storage, os.environ.get(PREFIX_VARIABLE, "")))
