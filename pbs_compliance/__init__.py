"""pbs-compliance: declarative, tested Proxmox Backup Server storage entries for Proxmox VE."""

from __future__ import annotations

__version__ = "0.1.0"
