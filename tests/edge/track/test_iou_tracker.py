"""IoU tracker on synthetic detections: stable ids, expiry, stationary time."""

from __future__ import annotations

from broker.payloads import Category
from edge.detect import Detection
from edge.track import Track, iou
from edge.track.iou_tracker import IouTracker, TrackerSettings, is_still, predict


def det(x: float, y: float, size: float = 100.0, category: Category = Category.ANIMAL) -> Detection:
    return Detection(x, y, x + size, y + size, 0.8, 0, str(category), category)


def test_iou_and_stillness() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == 50 / 150
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert is_still((0, 0, 100, 100), (3, 2, 103, 102), 0.1, 0.7)
    assert not is_still((0, 0, 100, 100), (20, 0, 120, 100), 0.1, 0.7)


def test_prediction_follows_velocity() -> None:
    tracker = IouTracker()
    tracker.update([det(0, 0)], 0.0)
    (track,) = tracker.update([det(10, 0)], 1.0)
    assert predict(track, 2.0) == (20.0, 0.0, 120.0, 100.0)


def test_resting_animal_is_stationary_for_700_s() -> None:
    tracker = IouTracker(TrackerSettings(max_missed=3))
    rng_jitter = [0.0, 1.5, -1.0, 2.0, -2.0]
    tracks: list[Track] = []
    for step in range(0, 141):  # one detection every 5 s for 700 s, with detector jitter
        t = step * 5.0
        j = rng_jitter[step % len(rng_jitter)]
        tracks = tracker.update([det(400 + j, 300 - j)], t)
    (track,) = tracks
    assert track.id == 1 and track.hits == 141
    assert abs(track.stationary_s(700.0) - 700.0) < 1e-9
    assert track.history.maxlen == TrackerSettings().history


def test_moving_animal_is_never_stationary() -> None:
    tracker = IouTracker()
    for step in range(100):
        (track,) = tracker.update([det(10 + 15 * step, 300)], step * 0.2)
        assert track.stationary_since is None
        assert track.id == 1
    assert track.stationary_s(100.0) == 0.0


def test_animal_that_stops_becomes_stationary_then_moves_again() -> None:
    tracker = IouTracker(TrackerSettings(stationary_hits=2))
    for step in range(10):
        tracker.update([det(20 * step, 300)], float(step))
    for step in range(10, 20):
        (track,) = tracker.update([det(180, 300)], float(step))
    assert track.stationary_since == 9.0 and track.stationary_s(19.0) == 10.0
    (track,) = tracker.update([det(220, 300)], 20.0)
    assert track.stationary_since is None


def test_crossing_objects_keep_their_ids() -> None:
    tracker = IouTracker()
    ids_by_direction: dict[str, set[int]] = {"right": set(), "left": set()}
    for step in range(40):
        right = det(100 + 25 * step, 300)
        left = det(1100 - 25 * step, 330)
        tracks = tracker.update([right, left], step * 0.2)
        assert len(tracks) == 2
        for track in tracks:
            going = "right" if track.box[1] == right.y1 else "left"
            ids_by_direction[going].add(track.id)
    assert ids_by_direction == {"right": {1}, "left": {2}}


def test_categories_do_not_mix_and_tracks_expire() -> None:
    tracker = IouTracker(TrackerSettings(max_missed=2, max_age_s=100.0))
    tracker.update([det(0, 0, category=Category.DOG)], 0.0)
    tracks = tracker.update([det(0, 0, category=Category.PERSON)], 1.0)
    assert sorted((t.id, t.category) for t in tracks) == [(1, Category.DOG), (2, Category.PERSON)]
    tracker.update([], 2.0)
    tracks = tracker.update([], 3.0)
    assert [t.id for t in tracks] == [2]  # the dog missed 3 updates (> 2), the person 2
    assert tracks[0].missed == 2
    assert tracker.update([], 4.0) == []


def test_tracks_expire_by_age() -> None:
    tracker = IouTracker(TrackerSettings(max_missed=1000, max_age_s=10.0))
    tracker.update([det(0, 0)], 0.0)
    assert len(tracker.update([], 9.0)) == 1
    assert tracker.update([], 10.5) == []
    (track,) = tracker.update([det(0, 0)], 11.0)
    assert track.id == 2
