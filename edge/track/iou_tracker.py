"""IoU tracker: greedy association of detections to constant-velocity predictions of tracks."""

from __future__ import annotations

import logging
import math
from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from edge.detect import Detection
from edge.track import DEFAULT_HISTORY, Box, Track, Tracker, box_of, centre, iou

log = logging.getLogger(__name__)

# Lower links boxes across bigger jumps (low frame rates, fast animals) but swaps ids of
# animals walking close together more often.
DEFAULT_MATCH_IOU = 0.2
# A few missed frames bridge a detector miss or an animal passing behind a tree; more keeps
# ghosts of animals that left.
DEFAULT_MAX_MISSED = 5
DEFAULT_MAX_AGE_S = 30.0
# Stationary: the centre moved less than this fraction of the box size and the box still
# overlaps the one at the start of the rest by this much. Looser counts a grazing deer as
# resting; tighter lets detector jitter restart the clock.
DEFAULT_STATIONARY_MOVE = 0.1
DEFAULT_STATIONARY_IOU = 0.7
# Consecutive still updates before an object counts as stationary (detector jitter alone
# can line up for one or two frames on a walking animal).
DEFAULT_STATIONARY_HITS = 3


class TrackerSettings(BaseModel):
    """Tracker configuration (the `tracker:` section of a camera)."""

    model_config = ConfigDict(extra="forbid")

    match_iou: float = Field(
        default=DEFAULT_MATCH_IOU, gt=0.0, lt=1.0, description="least IoU to link a detection"
    )
    max_missed: int = Field(
        default=DEFAULT_MAX_MISSED, ge=0, le=10_000, description="missed updates before expiry"
    )
    max_age_s: float = Field(
        default=DEFAULT_MAX_AGE_S, gt=0.0, le=86_400.0, description="seconds unseen before expiry"
    )
    stationary_move: float = Field(
        default=DEFAULT_STATIONARY_MOVE,
        gt=0.0,
        le=1.0,
        description="centre displacement (fraction of box size) still counted as not moving",
    )
    stationary_iou: float = Field(
        default=DEFAULT_STATIONARY_IOU,
        gt=0.0,
        le=1.0,
        description="least IoU with the box at the start of the rest",
    )
    stationary_hits: int = Field(
        default=DEFAULT_STATIONARY_HITS,
        ge=1,
        le=1000,
        description="consecutive still updates before an object is stationary",
    )
    history: int = Field(
        default=DEFAULT_HISTORY, ge=2, le=100_000, description="centres kept per track"
    )


def is_still(anchor: Box, box: Box, move: float, min_iou: float) -> bool:
    """Whether `box` is where `anchor` was (small centre shift and large overlap)."""
    (ax, ay), (bx, by) = centre(anchor), centre(box)
    size = max(anchor[2] - anchor[0], anchor[3] - anchor[1], 1e-6)
    return math.hypot(bx - ax, by - ay) <= move * size and iou(anchor, box) >= min_iou


def predict(track: Track, t: float) -> Box:
    """Where the track's box should be at `t`, moving on at the velocity of its last two centres."""
    if len(track.history) < 2:
        return track.box
    (t0, (x0, y0)), (t1, (x1, y1)) = track.history[-2], track.history[-1]
    dt = t1 - t0
    if dt <= 0:
        return track.box
    ahead = t - t1
    dx, dy = (x1 - x0) / dt * ahead, (y1 - y0) / dt * ahead
    b = track.box
    return b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy


def associate(
    predicted: list[Box], tracks: list[Track], detections: list[Detection], min_iou: float
) -> list[tuple[int, int]]:
    """Greedy matching (highest IoU first, same category only): (track index, detection index)."""
    pairs = [
        (iou(p, box_of(d)), ti, di)
        for ti, (p, track) in enumerate(zip(predicted, tracks, strict=True))
        for di, d in enumerate(detections)
        if d.category == track.category
    ]
    pairs.sort(key=lambda p: p[0], reverse=True)
    used_t: set[int] = set()
    used_d: set[int] = set()
    matches: list[tuple[int, int]] = []
    for score, ti, di in pairs:
        if score < min_iou:
            break
        if ti in used_t or di in used_d:
            continue
        used_t.add(ti)
        used_d.add(di)
        matches.append((ti, di))
    return matches


class IouTracker(Tracker):
    """Tracks objects by box overlap with their predicted positions; no appearance model."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.tracks: list[Track] = []
        self._next_id = 1
        # Per track: the box and time where the current rest started, and still updates since.
        self._anchor: dict[int, tuple[Box, float, int]] = {}

    def update(self, detections: list[Detection], t: float) -> list[Track]:
        """Feed one frame's detections at time `t` (seconds); the live tracks afterwards."""
        s = self.settings
        predicted = [predict(track, t) for track in self.tracks]
        matches = associate(predicted, self.tracks, detections, s.match_iou)
        matched_t = {ti for ti, _ in matches}
        matched_d = {di for _, di in matches}
        for ti, di in matches:
            self._observe(self.tracks[ti], detections[di], t)
        for ti, track in enumerate(self.tracks):
            if ti not in matched_t:
                track.missed += 1
        for di, detection in enumerate(detections):
            if di not in matched_d:
                self._start(detection, t)
        live: list[Track] = []
        for track in self.tracks:
            if track.missed > s.max_missed or t - track.last_seen > s.max_age_s:
                log.debug("track %d (%s) expired after %d hits", track.id, track.label, track.hits)
                self._anchor.pop(track.id, None)
            else:
                live.append(track)
        self.tracks = live
        return list(live)

    def _start(self, detection: Detection, t: float) -> None:
        box = box_of(detection)
        track = Track(
            id=self._next_id,
            category=detection.category,
            label=detection.label,
            box=box,
            score=detection.score,
            first_seen=t,
            last_seen=t,
            history=deque([(t, centre(box))], maxlen=self.settings.history),
        )
        self._next_id += 1
        self._anchor[track.id] = (box, t, 0)
        self.tracks.append(track)

    def _observe(self, track: Track, detection: Detection, t: float) -> None:
        s = self.settings
        box = box_of(detection)
        track.box = box
        track.score = detection.score
        track.label = detection.label
        track.last_seen = t
        track.hits += 1
        track.missed = 0
        track.history.append((t, centre(box)))
        anchor, since, still = self._anchor[track.id]
        if is_still(anchor, box, s.stationary_move, s.stationary_iou):
            still += 1
            if still >= s.stationary_hits and track.stationary_since is None:
                track.stationary_since = since
            self._anchor[track.id] = (anchor, since, still)
        else:
            track.stationary_since = None
            self._anchor[track.id] = (box, t, 0)
