"""Raspberry Pi side: provisioning files and systemd units for edge nodes and central."""

from importlib.resources import files
from pathlib import Path


def unit_path(name: str) -> Path:
    """Path of a shipped systemd unit, e.g. `wildwatch-edge.service`."""
    return Path(str(files("hardware") / "systemd" / name))
