"""`python -m pbs_compliance.cli`."""

from pbs_compliance.cli.app import main

main()
