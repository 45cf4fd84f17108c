"""Bursts: a camera trap fires several frames per trigger; close frames form one sequence."""

from __future__ import annotations

from collections.abc import Iterable

from edge.ingest import MediaItem

DEFAULT_GAP_S = 60.0  # camera-trap bursts are 1-10 s apart; a new trigger is usually minutes later


def group_bursts(items: Iterable[MediaItem], gap_s: float = DEFAULT_GAP_S) -> list[list[MediaItem]]:
    """Group items per camera into sequences of frames less than `gap_s` apart (capture order)."""
    by_camera: dict[str, list[MediaItem]] = {}
    for item in sorted(items, key=lambda m: (m.captured_at, m.path.name)):
        by_camera.setdefault(item.camera, []).append(item)
    sequences: list[list[MediaItem]] = []
    for frames in by_camera.values():
        current: list[MediaItem] = []
        for item in frames:
            if current and (item.captured_at - current[-1].captured_at).total_seconds() > gap_s:
                sequences.append(current)
                current = []
            current.append(item)
        if current:
            sequences.append(current)
    sequences.sort(key=lambda seq: (seq[0].captured_at, seq[0].camera))
    return sequences
