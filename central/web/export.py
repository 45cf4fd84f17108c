"""Exports of a filtered set of events: CSV (UTF-8 with BOM, so Excel on a Chinese Windows opens
it right), XLSX (openpyxl, write-only) and the MegaDetector batch format (one image per event,
its boxes as detections; Timelapse and AddaxAI read it). Each streams: the set may be large."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from broker.payloads import Category
from central.db.models import Event
from central.reports.xlsx import safe_cell
from central.web import labels
from surveillance.megadetector import (
    BBOX_DIGITS,
    CONF_DIGITS,
    DETECTION_CATEGORIES,
    FINE_CATEGORIES,
    FORMAT_VERSION,
    MD_CATEGORY,
    SPECIES_FLOOR,
)

Column = Callable[[Event, ZoneInfo], Any]

COLUMNS: tuple[tuple[str, Column], ...] = (
    ("拍摄时间 captured", lambda e, tz: _local(e.captured_at, tz)),
    ("站点 site", lambda e, tz: e.site),
    ("节点 node", lambda e, tz: e.node),
    ("相机 camera", lambda e, tz: e.camera),
    ("类型 kind", lambda e, tz: labels.KINDS.get(e.kind, e.kind)),
    ("规则 rule", lambda e, tz: labels.rule(e.rule) if e.rule else ""),
    ("级别 severity", lambda e, tz: labels.SEVERITIES.get(e.severity, e.severity)),
    ("类别 category", lambda e, tz: labels.CATEGORIES.get(e.category, e.category)),
    ("数量 count", lambda e, tz: e.count),
    ("物种 species", lambda e, tz: e.species_chinese or ""),
    ("学名 scientific name", lambda e, tz: e.species_scientific or ""),
    ("置信度 confidence", lambda e, tz: round(e.confidence, 3)),
    ("审核 review", lambda e, tz: labels.REVIEW_STATES.get(e.review_status, e.review_status)),
    ("审核人 reviewer", lambda e, tz: e.reviewer or ""),
    ("说明 message", lambda e, tz: e.message_zh),
    ("事件编号 event id", lambda e, tz: e.event_id),
)


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection): texts
# from nodes (messages, species names) are written with a leading apostrophe instead.


_safe = safe_cell


def _row(event: Event, tz: ZoneInfo) -> list[Any]:
    return [_safe(fn(event, tz)) for _, fn in COLUMNS]


def write_csv(rows: Iterable[Event], tz: ZoneInfo) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([name for name, _ in COLUMNS])
    yield ("\ufeff" + buffer.getvalue()).encode()
    for event in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(_row(event, tz))
        yield buffer.getvalue().encode()


def write_xlsx(rows: Iterable[Event], tz: ZoneInfo) -> Iterator[bytes]:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("事件 events")
    ws.append([name for name, _ in COLUMNS])
    for event in rows:
        ws.append(_row(event, tz))
    # openpyxl writes a zip, which needs a seekable file: spooled to disk past 8 MB
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as out:
        wb.save(out)
        out.seek(0)
        while chunk := out.read(1 << 16):
            yield chunk


def _detections(event: Event) -> list[dict[str, Any]]:
    found = []
    for box in event.boxes:
        try:
            category = Category(box.get("category", ""))
        except ValueError:
            continue
        md = MD_CATEGORY.get(category)
        if md is None:
            continue
        det: dict[str, Any] = {
            "category": md,
            "conf": round(float(box["confidence"]), CONF_DIGITS),
            "bbox": [round(float(box[k]), BBOX_DIGITS) for k in ("x", "y", "w", "h")],
        }
        classes: list[list[Any]] = []
        if category in FINE_CATEGORIES:
            classes.append([str(FINE_CATEGORIES.index(category) + 1), det["conf"]])
        if (
            category in (Category.BIRD, Category.ANIMAL)
            and event.species_scientific
            and (event.species_confidence or 0.0) >= SPECIES_FLOOR
        ):
            classes.append(["species", round(event.species_confidence or 0.0, CONF_DIGITS)])
        if classes:
            det["classifications"] = classes
        found.append(det)
    return found


def write_megadetector(rows: Iterable[Event], tz: ZoneInfo) -> Iterator[bytes]:
    """One image per event (its first evidence file, else the node's source path); species
    classifications get one category id per scientific name, listed at the end."""
    species_ids: dict[str, str] = {}
    fine = {str(i + 1): c.value for i, c in enumerate(FINE_CATEGORIES)}
    yield b'{"images": ['
    first = True
    for event in rows:
        detections = _detections(event)
        for det in detections:
            for cls in det.get("classifications", []):
                if cls[0] == "species":
                    name = event.species_scientific or ""
                    cls[0] = species_ids.setdefault(name, str(len(fine) + len(species_ids) + 1))
        image = {
            "file": f"{event.site}/{event.camera}/"
            + (event.evidence[0].name if event.evidence else event.source or event.event_id),
            "datetime": _local(event.captured_at, tz),
            "detections": detections,
            "max_detection_conf": max((d["conf"] for d in detections), default=0.0),
        }
        yield (b"" if first else b",") + json.dumps(image, ensure_ascii=False).encode()
        first = False
    classification = {**fine, **{v: k for k, v in species_ids.items()}}
    tail = {
        "detection_categories": DETECTION_CATEGORIES,
        "classification_categories": classification,
        "info": {
            "format_version": FORMAT_VERSION,
            "detector": "wildwatch-central-export",
            "classifier": "wildwatch",
        },
    }
    yield b"], " + json.dumps(tail, ensure_ascii=False)[1:].encode()


WRITERS: dict[str, Callable[[Iterable[Event], ZoneInfo], Iterator[bytes]]] = {
    "csv": write_csv,
    "xlsx": write_xlsx,
    "md.json": write_megadetector,
}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "md.json": "application/json",
}
