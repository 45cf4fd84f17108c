"""The prefetching image reader."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.detect.prefetch import prefetch
from edge.ingest import MediaError, load_image


def test_prefetch_keeps_order_and_yields_media_errors(images_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    paths = [*sorted(images_dir.glob("bird_*.jpg")), bad]
    out = list(prefetch(paths, load_image, depth=1))
    assert [p for p, _ in out] == paths
    assert isinstance(out[-1][1], MediaError)
    assert all(not isinstance(img, MediaError) and img.ndim == 3 for _, img in out[:-1])


def test_prefetch_reraises_other_errors_and_stops_early() -> None:
    def boom(path: Path) -> int:
        if path.name == "2":
            raise RuntimeError("disk on fire")
        return int(path.name)

    paths = [Path(str(i)) for i in range(5)]
    got = []
    with pytest.raises(RuntimeError, match="fire"):
        for _, value in prefetch(paths, boom, depth=2):
            got.append(value)
    assert got == [0, 1]
    before = threading.active_count()
    it = prefetch([Path(str(i)) for i in range(100)], lambda p: int(p.name), depth=1)
    assert next(it) == (Path("0"), 0)
    it.close()
    assert threading.active_count() <= before
    with pytest.raises(ValueError):
        next(prefetch(paths, boom, depth=0))
