"""A faithful local PVE + PBS + DNS on loopback: the demo target and the integration-test bed."""
