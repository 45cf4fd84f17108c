"""Detection crops from motion boxes and the per-frame gate."""

from __future__ import annotations

from edge.motion import Region
from edge.motion.gate import DetectionGate, GateSettings, group_regions, square_crop

FRAME = (1080, 1920, 3)


def test_square_crop_is_model_sized_and_inside_frame() -> None:
    crop = square_crop(Region(10, 10, 40, 40), FRAME, 416)
    assert crop == Region(0, 0, 416, 416)  # shifted into the frame, not clipped
    crop = square_crop(Region(1900, 1000, 1920, 1080), FRAME, 416)
    assert crop == Region(1504, 664, 1920, 1080)
    big = square_crop(Region(0, 100, 1000, 900), FRAME, 416, multiplier=1.5)
    assert big.width == 1500 and big.height == 1080  # taller than the frame: clipped


def test_nearby_boxes_merge_distant_ones_do_not() -> None:
    legs = Region(900, 600, 940, 700)
    head = Region(950, 560, 990, 600)
    far = Region(100, 100, 140, 140)
    crops = group_regions([legs, head, far], FRAME, 416)
    assert len(crops) == 2
    for crop in crops:
        assert crop.width == crop.height >= 416
    assert any(c.x1 <= 900 and c.x2 >= 990 and c.y1 <= 560 and c.y2 >= 700 for c in crops)
    assert any(c.x1 <= 100 and c.x2 >= 140 for c in crops)


def test_overlapping_crops_merge() -> None:
    a = Region(800, 500, 820, 520)
    b = Region(900, 500, 920, 520)  # apart as boxes, but their 416 crops nearly coincide
    assert len(group_regions([a, b], FRAME, 416)) == 1
    assert group_regions([], FRAME, 416) == []


def test_gate_skips_static_frames_and_checks_full_frame_periodically() -> None:
    gate = DetectionGate(GateSettings(full_frame_every_frames=10, full_frame_every_s=None))
    modes = [gate.decide([], FRAME, float(i)).mode for i in range(30)]
    assert [i for i, m in enumerate(modes) if m == "full"] == [0, 10, 20]
    assert gate.stats.skipped == 27 and gate.stats.skipped_fraction == 0.9


def test_gate_runs_on_crops_and_by_time() -> None:
    gate = DetectionGate(GateSettings(full_frame_every_frames=None, full_frame_every_s=5.0))
    assert gate.decide([], FRAME, 0.0).mode == "full"
    decision = gate.decide([Region(100, 100, 150, 150)], FRAME, 1.0)
    assert decision.mode == "crops" and decision.crops == [Region(0, 0, 416, 416)]
    assert gate.decide([], FRAME, 4.9).mode == "skip"
    assert gate.decide([], FRAME, 5.0).mode == "full"
    assert gate.stats.crop_calls == 1 and gate.stats.full == 2


def test_gate_prefers_full_frame_when_crops_cover_most_of_it() -> None:
    gate = DetectionGate(GateSettings(full_frame_every_frames=1000, full_frame_coverage=0.3))
    gate.decide([], FRAME, 0.0)
    everywhere = [Region(x, y, x + 20, y + 20) for x in (100, 800, 1500) for y in (100, 800)]
    assert gate.decide(everywhere, FRAME, 0.1).mode == "full"
