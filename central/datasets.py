"""训练数据集 Labelled data leaving the station for retraining elsewhere: reviewed events with
their evidence frame, packed in one zip as COCO Camera Traps JSON, MegaDetector batch-output JSON
carrying the reviewed labels, and the images under the JSON's file names.

What a review says about the frame (also in the README):

- confirmed 确认: every box of the event with its category; bird and animal boxes also with a
  species where one is known for that box: the species the reviewer named on the box they
  named; on the other boxes the node's species only for events whose boxes share one species
  (observations, motionless birds: `dataset_formats.one_species`), never for rules whose boxes
  may mix species (abnormal_count, high_risk_species, ...): those boxes keep their category;
- dismissed as background 背景误报: the detector saw something that is not there, so the frame
  is empty (COCO CT category 0 `empty`, no box; in the MegaDetector file no detection): a hard
  negative;
- dismissed as wrong species 物种识别错误: the animal is there, the species is not that one:
  the boxes keep their category and carry no species;
- dismissed as duplicate or other, unreviewed events, and events without a stored frame are
  left out: a duplicate is already in through the event it repeats, and 'other' says nothing
  about the frame.

Only the event's own frame goes in (the one its boxes belong to: the node lists earlier frames
of the burst first, then this frame, then its crops), and only when the event's boxes are all
the frame's detections: a node uploads a frame once, with the most severe of the frame's events,
and one crop per detection of the frame (`<stem>_crop<i>`), so the frame is whole when the
event has as many boxes as the frame has crops. Otherwise another event's animal may be on
the frame unlabelled (a background dismissal would call it empty, a confirmation would annotate
only its own boxes): the frame is left out and counted as `partial`. A node lists at most
MAX_EVIDENCE files; a list that full may have lost crops, so it counts as partial too. A rule
that follows a track (motionless_bird, ...: `gallery.TRACK_RULES`) may make its box up when the
detector missed the bird, so the counts can agree by chance: its crops must also fit its boxes
(`gallery.crop_fits`), else the frame is partial too.

Sequences follow MegaDetector's rule (`cct_json_utils.create_sequences`): frames of one camera
less than 60 s apart share a seq_id.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from broker.payloads import MAX_EVIDENCE, Category
from central import messages
from central.config import CentralConfig
from central.dataset_formats import (
    COARSE,
    Frame,
    LabelledBox,
    Labelling,
    Species,
    coco_camera_traps,
    local_time,
    megadetector,
    one_species,
    sequences,
)
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED, Event, EventReview
from central.gallery import TRACK_RULES, crop_fits
from models.species import Catalogue

log = logging.getLogger(__name__)

COCO_NAME = "coco_camera_traps.json"
MD_NAME = "megadetector.json"
SPECIES_CATEGORIES = frozenset({Category.ANIMAL, Category.BIRD})
BATCH = 500  # events read per database round trip (their evidence rows come along)
# Longest window the API and the console build in one request (the command line has no bound):
# a year of a busy station is some thousand frames, minutes of a worker; longer goes in parts.
MAX_WINDOW_DAYS = 366
# A download's zip is removed once sent; one whose client went away first is removed by a later
# download after this long (longer than any download of MAX_WINDOW_DAYS takes).
STALE_DOWNLOAD_S = 6 * 3600
_CROP = re.compile(r"^(?P<stem>.+)_crop\d+\.[A-Za-z]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def labelling(status: str, reason: str | None) -> Labelling | None:
    """How a reviewed event labels its frame; None: it is left out (see the module's doc)."""
    if status == REVIEW_CONFIRMED:
        return Labelling.CONFIRMED
    if status == REVIEW_DISMISSED and reason == "background":
        return Labelling.BACKGROUND
    if status == REVIEW_DISMISSED and reason == "wrong_species":
        return Labelling.WRONG_SPECIES
    return None


@dataclass(slots=True)
class Summary:
    """What one export wrote."""

    path: Path
    images: int = 0
    annotations: int = 0
    empty: int = 0
    sequences: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    seconds: float = 0.0


def day_window(first: date, last: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[since, until) covering the local days first..last, both included."""
    return (
        datetime.combine(first, dtime(), tz),
        datetime.combine(last + timedelta(days=1), dtime(), tz),
    )


def check_window(since: datetime, until: datetime) -> str | None:
    """Why a window cannot be exported through the API or console (a message), else None."""
    if until <= since:
        return messages.DATASET_BAD_WINDOW
    if until - since > timedelta(days=MAX_WINDOW_DAYS):
        return messages.DATASET_WINDOW_TOO_LONG.format(days=MAX_WINDOW_DAYS)
    return None


def frame_name(listed: Sequence[str], stored: Collection[str]) -> str | None:
    """The stored file the event's boxes belong to: the frame its crops were cut from, else the
    last full frame the node listed (it lists earlier frames of the burst first)."""
    order = [n for n in listed if n in stored] or sorted(stored)
    stems = {m["stem"] for n in order if (m := _CROP.match(n))}
    frames = [n for n in order if not _CROP.match(n)]
    for name in frames:
        if Path(name).stem in stems:
            return name
    return frames[-1] if frames else None


def whole_frame(frame: str, names: Collection[str], boxes: int) -> bool:
    """Whether an event's `boxes` are every detection of its `frame`: as many as the frame's
    crops among the evidence `names` the node listed (one crop per detection), and the list not
    cut at MAX_EVIDENCE (a cut list may have lost crops)."""
    stem = Path(frame).stem
    crops = sum(1 for n in names if (m := _CROP.match(n)) and m["stem"] == stem)
    return crops == boxes and len(names) < MAX_EVIDENCE


def species_of_boxes(
    count: int,
    *,
    node: Species | None,
    named: Species | None,
    named_box: int | None,
    shared: bool = True,
) -> list[Species | None]:
    """The species of each of an event's `count` boxes. The named one (by the reviewer) on its
    box (the first when none was given). When the boxes `shared` one species (the event's rule
    says so): without a named species the node's on every box, else the node's on the others
    only where it agrees (a corrected guess says nothing sure about the other animals). When
    they may not, the node's species is on no box: its rule picked one species among several."""
    if named is None:
        return [node if shared else None] * count
    target = named_box or 0
    agrees = node is not None and node.scientific == named.scientific
    other = node if shared and agrees else None
    return [named if i == target else other for i in range(count)]


def _boxes(event: Event, review: Labelling, catalogue: Catalogue | None) -> tuple[LabelledBox, ...]:
    if review is Labelling.BACKGROUND:
        return ()
    node = (
        Species(event.species_scientific, event.species_chinese or "")
        if event.species_scientific
        else None
    )
    named = None
    if event.confirmed_species:
        known = catalogue.get(event.confirmed_species) if catalogue is not None else None
        same = node is not None and node.scientific == event.confirmed_species
        chinese = known.chinese_name if known else (node.chinese if node and same else "")
        named = Species(event.confirmed_species, chinese)
    species = (
        species_of_boxes(
            len(event.boxes),
            node=node,
            named=named,
            named_box=event.confirmed_box,
            shared=one_species(event.kind, event.rule),
        )
        if review is Labelling.CONFIRMED
        else [None] * len(event.boxes)
    )
    found = []
    for raw, one in zip(event.boxes, species, strict=True):
        try:
            category = Category(raw.get("category", ""))
            x, y, w, h = (float(raw[k]) for k in ("x", "y", "w", "h"))
        except (KeyError, TypeError, ValueError):
            continue
        if category not in COARSE:
            continue
        found.append(
            LabelledBox(category, x, y, w, h, one if category in SPECIES_CATEGORIES else None)
        )
    return tuple(found)


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def _latest_reasons(session: Session, event_ids: Sequence[str]) -> dict[str, str | None]:
    """The reason of each event's latest dismissal (the one the row carries)."""
    rows = session.execute(
        sa.select(EventReview.event_id, EventReview.reason)
        .where(EventReview.event_id.in_(event_ids), EventReview.decision == REVIEW_DISMISSED)
        .order_by(EventReview.event_id, EventReview.reviewed_at, EventReview.id)
    )
    return {event_id: reason for event_id, reason in rows}  # the last one wins


def collect(
    *,
    session: Session,
    evidence_dir: Path,
    since: datetime,
    until: datetime,
    sites: Collection[str] | None = None,
    skipped: dict[str, int] | None = None,
    catalogue: Catalogue | None = None,
) -> Iterator[Frame]:
    """The frames of reviewed events captured in [since, until) (at `sites`, else every site),
    in capture order; `skipped` counts what was left out and why; `catalogue` gives the Chinese
    name of a species a reviewer named."""
    left = skipped if skipped is not None else {}
    query = (
        sa.select(Event)
        .where(
            Event.captured_at >= since,
            Event.captured_at < until,
            Event.review_status.in_([REVIEW_CONFIRMED, REVIEW_DISMISSED]),
        )
        .order_by(Event.captured_at, Event.id)
        .execution_options(yield_per=BATCH)
    )
    if sites is not None:
        query = query.where(Event.site.in_(sorted(sites)))
    for batch in session.scalars(query).partitions():
        dismissed = [e.event_id for e in batch if e.review_status == REVIEW_DISMISSED]
        reasons = _latest_reasons(session, dismissed) if dismissed else {}
        for event in batch:
            review = labelling(event.review_status, reasons.get(event.event_id))
            if review is None:
                left["review"] = left.get("review", 0) + 1
                continue
            frame = _frame(event, review, evidence_dir, catalogue)
            if isinstance(frame, str):
                left[frame] = left.get(frame, 0) + 1
                continue
            yield frame


def _frame(
    event: Event, review: Labelling, evidence_dir: Path, catalogue: Catalogue | None
) -> Frame | str:
    """The event's frame, else why it is left out (a key of Summary.skipped)."""
    stored = {row.name: row for row in event.evidence}
    listed = [str(ref.get("name", "")) for ref in (event.payload or {}).get("evidence") or []]
    name = frame_name(listed, stored)
    if name is None:
        return "no_image"
    if not whole_frame(name, listed or list(stored), len(event.boxes)):
        return "partial"  # other detections of the frame belong to other events
    source = evidence_dir / stored[name].path
    try:
        with Image.open(source) as image:
            width, height = image.size
    except OSError as exc:  # gone from the disk, or not an image
        log.warning("event %s: frame %s not readable: %s", event.event_id, source, exc)
        return "no_image"
    if event.rule in TRACK_RULES and not _crops_fit(event, name, (width, height), evidence_dir):
        return "partial"  # a box made up from the track, the crop another detection's
    boxes = _boxes(event, review, catalogue)
    if review is not Labelling.BACKGROUND and not boxes:
        return "no_image"  # nothing to say about a frame without a box
    return Frame(
        event_id=event.event_id,
        site=event.site,
        camera=event.camera,
        captured_at=event.captured_at,
        source=source,
        file_name=f"{_safe(event.site)}/{_safe(event.camera)}/{event.event_id}_{_safe(name)}",
        width=width,
        height=height,
        review=review,
        boxes=boxes,
    )


def _crops_fit(event: Event, frame: str, size: tuple[int, int], evidence_dir: Path) -> bool:
    """Whether each box's crop (crop i of the frame for box i) fits that box."""
    stored = {row.name: row.path for row in event.evidence}
    stem = Path(frame).stem
    for i, raw in enumerate(event.boxes):
        path = stored.get(f"{stem}_crop{i}.jpg")
        if path is None:
            return False
        try:
            with Image.open(evidence_dir / path) as image:
                crop = image.size
        except OSError:
            return False
        if not crop_fits(raw, crop, size):
            return False
    return True


def write_package(
    frames: Sequence[Frame], out: Path, *, tz: ZoneInfo, info: dict[str, Any]
) -> tuple[int, int]:
    """Write the zip (both JSON files at its root, the images under their file names) under a
    temporary name beside `out`, then rename it: `out` is whole or absent. Returns (images,
    annotations)."""
    coco = coco_camera_traps(frames, tz=tz, info=info)
    md = megadetector(frames, tz=tz, info=info)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, doc in ((COCO_NAME, coco), (MD_NAME, md)):
                    zf.writestr(name, json.dumps(doc, ensure_ascii=False, indent=1))
                for f in frames:  # JPEGs do not deflate: stored as they are
                    zf.write(f.source, f.file_name, compress_type=zipfile.ZIP_STORED)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(coco["images"]), len(coco["annotations"])


def export(
    *,
    session: Session,
    evidence_dir: Path,
    tz: ZoneInfo,
    since: datetime,
    until: datetime,
    out: Path,
    sites: Collection[str] | None = None,
    station: str = "",
    catalogue: Catalogue | None = None,
) -> Summary:
    """Build the dataset of events captured in [since, until) and write it to `out` (zip)."""
    started = time.perf_counter()
    summary = Summary(path=out)
    frames = list(
        collect(
            session=session,
            evidence_dir=evidence_dir,
            since=since,
            until=until,
            sites=sites,
            skipped=summary.skipped,
            catalogue=catalogue,
        )
    )
    now = datetime.now(UTC)
    info = {
        "version": now.strftime("%Y%m%dT%H%M%SZ"),
        "description": messages.DATASET_DESCRIPTION.format(
            station=station or "WildWatch",
            since=local_time(since, tz),
            until=local_time(until, tz),
            sites=", ".join(sorted(sites)) if sites is not None else "*",
        ),
        "year": now.year,
        "contributor": station or "WildWatch",
        "date_created": now.isoformat(timespec="seconds"),
    }
    summary.images, summary.annotations = write_package(frames, out, tz=tz, info=info)
    summary.empty = sum(1 for f in frames if not f.boxes)
    summary.sequences = len({s.seq_id for s in sequences(frames).values()})
    summary.bytes = out.stat().st_size
    summary.seconds = time.perf_counter() - started
    log.info(
        "dataset %s: %d images, %d annotations, %d bytes in %.1f s (left out: %s)",
        out,
        summary.images,
        summary.annotations,
        summary.bytes,
        summary.seconds,
        summary.skipped,
    )
    return summary


def export_for_download(
    *,
    session: Session,
    config: CentralConfig,
    since: datetime,
    until: datetime,
    sites: Collection[str] | None,
) -> Summary:
    """The dataset for one download (API or console), written under data_dir/exports with a
    name of its own; the caller removes the file once sent."""
    folder = config.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder, time.time() - STALE_DOWNLOAD_S)
    fd, name = tempfile.mkstemp(dir=folder, prefix="dataset-", suffix=".zip")
    os.close(fd)
    try:
        return export(
            session=session,
            evidence_dir=config.evidence_dir,
            tz=ZoneInfo(config.timezone),
            since=since,
            until=until,
            out=Path(name),
            sites=sites,
            station=config.report.station_name,
            catalogue=config.species_catalogue,
        )
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _remove_stale(folder: Path, before: float) -> None:
    """Downloads whose removal never ran (the client went away before the end), and the
    temporary `.dataset-*.zip.*.part` files of exports a crash stopped half-way."""
    for old in [*folder.glob("dataset-*.zip"), *folder.glob(".dataset-*.zip.*.part")]:
        try:
            if old.stat().st_mtime < before:
                old.unlink()
        except FileNotFoundError:  # another request removed it first
            continue


def download_name(since: datetime, until: datetime, tz: ZoneInfo) -> str:
    """The file name a download is offered under: the local days it covers."""
    last = until.astimezone(tz) - timedelta(microseconds=1)
    return f"wildwatch-coco-{since.astimezone(tz):%Y%m%d}-{last:%Y%m%d}.zip"
