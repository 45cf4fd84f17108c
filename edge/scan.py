"""`edge scan`: process a folder of camera-trap media as one camera, in capture-time order.

The folder goes through the same stills stream as a node's drop folder (edge/pipeline.py):
frames of one burst are decided together so that a bird's species is called once per burst.
Images are decoded on a reader thread while the detector works. Results are written as they
come (events, per-image lines, MegaDetector JSON, CSV): memory stays flat however many
pictures an SD card holds.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from broker.payloads import MAX_SOURCE
from broker.validate import encode
from edge.config import NodeConfig
from edge.detect import Detector
from edge.detect.prefetch import prefetch
from edge.evidence import EvidenceStore
from edge.export import ImageResult
from edge.ingest import IMAGE_SUFFIXES, MediaError, MediaItem, load_image
from edge.ingest.folder import scan_folder
from edge.pipeline import Analysis, build_pipeline

log = logging.getLogger(__name__)

ResultSink = Callable[[ImageResult], None]


@dataclass
class ScanSummary:
    """What a scan saw (counts only: per-image results go to the sinks as they come)."""

    images: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    detections: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)


def _pixels(path: Path) -> Any:
    # videos are sampled by the pipeline itself; only stills are decoded ahead
    return load_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else None


def _decoded(items: list[MediaItem], progress: bool) -> Iterator[tuple[MediaItem, Any]]:
    by_path = {i.path: i for i in items}
    decoded = prefetch([i.path for i in items], _pixels)
    bar = tqdm(decoded, total=len(items), desc="扫描 scan", unit="img", disable=not progress)
    for path, pixels in bar:
        yield by_path[path], pixels


def scan(
    directory: Path,
    config: NodeConfig,
    *,
    camera: str,
    events_out: IO[str] | None = None,
    results_out: IO[str] | None = None,
    on_result: ResultSink | None = None,
    evidence_dir: Path | None = None,
    detector: Detector | None = None,
    progress: bool | None = None,
) -> ScanSummary:
    """Run the pipeline over every image and clip; events are numbered 1..n in capture order.

    `on_result` receives one ImageResult per file (MegaDetector JSON and CSV writers); a
    progress bar with images/s and time left is shown on a terminal (`progress` overrides).
    """
    items = scan_folder(directory, camera, config.tz, earliest=config.capture_time_floor)
    pipeline = build_pipeline(config, detector)
    stream = pipeline.stills()
    evidence = EvidenceStore(evidence_dir, config.evidence_limit_mb) if evidence_dir else None
    summary = ScanSummary()
    show = sys.stderr.isatty() if progress is None else progress
    seq = 0

    def record(analyses: list[Analysis]) -> None:
        nonlocal seq
        for analysis in analyses:
            seq = _record(
                analysis, directory, summary, seq, events_out, results_out, on_result, evidence
            )

    for item, pixels in _decoded(items, show):
        try:
            if isinstance(pixels, MediaError):
                raise pixels
            record(stream.push(item, pixels))
        except MediaError as exc:
            log.warning("%s: %s", item.path.name, exc)
            summary.failed[str(item.path)] = str(exc)
            if on_result is not None:
                on_result(ImageResult(_rel(item.path, directory), None, str(exc)))
            if results_out is not None:
                results_out.write(json.dumps({"file": str(item.path), "failure": str(exc)}) + "\n")
    record(stream.flush())
    return summary


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _record(
    analysis: Analysis,
    directory: Path,
    summary: ScanSummary,
    seq: int,
    events_out: IO[str] | None,
    results_out: IO[str] | None,
    on_result: ResultSink | None,
    evidence: EvidenceStore | None,
) -> int:
    r, item = analysis.result, analysis.item
    assert item is not None  # a scan only reads files
    # Cards hold 100RECNX/IMG_0001.JPG and 101RECNX/IMG_0001.JPG: name files by their place
    rel = _rel(item.path, directory)
    summary.images += 1
    summary.detections.update(d.category.value for d in r.detections)
    if on_result is not None:
        classes = [
            [(c.scientific_name, round(c.probability, 4)) for c in analysis.species[i].top]
            if i in analysis.species
            else []
            for i in range(len(r.detections))
        ]
        on_result(ImageResult(rel, r, None, classes if any(classes) else []))
    if results_out is not None:
        results_out.write(json.dumps(_result_line(analysis), ensure_ascii=False) + "\n")
    if evidence is not None and analysis.events and r.detections:
        evidence.save(
            image=analysis.pixels(),
            detections=r.detections,
            camera=item.camera,
            day=item.captured_at.strftime("%Y-%m-%d"),
            stem=f"{item.path.stem}_{item.sha256[:8]}",  # as the node names it: never overwritten
        )
    for ev in analysis.events:
        seq += 1
        update: dict[str, object] = {"seq": seq}
        if ev.source == item.path.name:
            update["source"] = rel[-MAX_SOURCE:]  # a longer path keeps its tail (the file)
        ev = ev.model_copy(update=update)
        summary.events[ev.rule or ev.kind.value] += 1
        if events_out is not None:
            events_out.write(encode(ev).decode("utf-8") + "\n")
    return seq


def _result_line(analysis: Analysis) -> dict[str, object]:
    r, item = analysis.result, analysis.item
    assert item is not None
    dets = []
    for i, d in enumerate(r.detections):
        line: dict[str, object] = {
            "category": d.category.value,
            "label": d.label,
            "score": round(d.score, 4),
            "bbox": [round(v, 5) for v in d.normalised(r.width, r.height)],
        }
        cls = analysis.species.get(i)
        if cls is not None:
            line["species"] = [
                {
                    "scientific_name": c.scientific_name,
                    "chinese_name": c.chinese_name,
                    "rank": c.rank,
                    "probability": round(c.probability, 4),
                }
                for c in cls.top
            ]
            line["species_uncertain"] = cls.uncertain
        dets.append(line)
    return {
        "file": str(item.path),
        "captured_at": item.captured_at.isoformat(),
        "time_source": item.time_source,
        "width": r.width,
        "height": r.height,
        "model": r.model,
        "inference_ms": round(r.inference_ms, 2),
        "detections": dets,
    }
