"""Node health for heartbeats: load, CPU temperature, free disk, outbox depth."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from broker.payloads import CameraState, HeartbeatPayload, LinkHealth, utc_now
from edge import __version__

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")  # Raspberry Pi SoC sensor
_STARTED = time.monotonic()


def cpu_temperature_c(zone: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature in °C where the kernel exposes it."""
    try:
        return int(zone.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def disk_free_mb(path: Path) -> float | None:
    """Free space where the node keeps its data."""
    try:
        return shutil.disk_usage(path).free / 1e6
    except OSError:
        return None


def heartbeat(
    *,
    site: str,
    node: str,
    data_dir: Path,
    outbox_depth: int,
    last_seq: int,
    cameras: dict[str, CameraState],
    models: dict[str, str],
    storage_near_limit: bool = False,
    storage_used_mb: float | None = None,
    storage_cap_mb: float | None = None,
    link: LinkHealth | None = None,
    clock_offset_ms: float | None = None,
    release: str | None = None,
    release_error: str | None = None,
) -> HeartbeatPayload:
    """A heartbeat payload describing this node now."""
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    return HeartbeatPayload(
        site=site,
        node=node,
        sent_at=utc_now(),
        uptime_s=round(time.monotonic() - _STARTED, 1),
        load_1m=load,
        cpu_temp_c=cpu_temperature_c(),
        disk_free_mb=disk_free_mb(data_dir),
        outbox_depth=outbox_depth,
        last_seq=last_seq,
        storage_near_limit=storage_near_limit,
        storage_used_mb=None if storage_used_mb is None else round(storage_used_mb, 1),
        storage_cap_mb=storage_cap_mb,
        link=link,
        clock_offset_ms=clock_offset_ms,
        cameras=cameras,
        software_version=__version__,
        models=models,
        release=release,
        release_error=release_error[:500] if release_error else None,
    )
