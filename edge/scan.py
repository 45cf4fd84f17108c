"""`edge scan`: process a folder of camera-trap media as one camera, in capture-time order.

Images are decoded on a reader thread while the detector works; frames of one burst are decided
together so that a bird's species is called once per burst.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
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
from edge.pipeline import Analysis, Look, Pipeline, build_pipeline

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    """What a scan saw."""

    images: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    detections: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    results: list[ImageResult] = field(default_factory=list)


def _pixels(path: Path) -> Any:
    # videos are sampled by the pipeline itself; only stills are decoded ahead
    return load_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else None


def _looks(
    pipeline: Pipeline, items: list[MediaItem], progress: bool
) -> Iterator[tuple[MediaItem, Look | MediaError]]:
    by_path = {i.path: i for i in items}
    decoded = prefetch([i.path for i in items], _pixels)
    for path, pixels in tqdm(
        decoded, total=len(items), desc="scan", unit="img", disable=not progress
    ):
        item = by_path[path]
        if isinstance(pixels, MediaError):
            yield item, pixels
            continue
        try:
            yield item, pipeline.look(item, pixels)
        except MediaError as exc:
            yield item, exc


def scan(
    directory: Path,
    config: NodeConfig,
    *,
    camera: str,
    events_out: IO[str] | None = None,
    results_out: IO[str] | None = None,
    evidence_dir: Path | None = None,
    detector: Detector | None = None,
    progress: bool | None = None,
) -> ScanSummary:
    """Run the pipeline over every image and clip; events are numbered 1..n in capture order."""
    items = scan_folder(directory, camera, config.tz, earliest=config.capture_time_floor)
    pipeline = build_pipeline(config, detector)
    evidence = EvidenceStore(evidence_dir, config.evidence_limit_mb) if evidence_dir else None
    summary = ScanSummary()
    show = sys.stderr.isatty() if progress is None else progress
    burst: list[Look] = []
    seq = 0

    def flush() -> None:
        nonlocal seq
        for analysis in pipeline.analyse_burst(burst):
            seq = _record(analysis, directory, summary, seq, events_out, results_out, evidence)
        burst.clear()

    for item, look in _looks(pipeline, items, show):
        if isinstance(look, MediaError):
            log.warning("%s: %s", item.path.name, look)
            summary.failed[str(item.path)] = str(look)
            summary.results.append(ImageResult(_rel(item.path, directory), None, str(look)))
            if results_out is not None:
                results_out.write(json.dumps({"file": str(item.path), "failure": str(look)}) + "\n")
            continue
        gap = (item.captured_at - burst[-1].item.captured_at).total_seconds() if burst else 0.0
        if burst and gap > config.burst_gap_s:
            flush()
        burst.append(look)
    flush()
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
    evidence: EvidenceStore | None,
) -> int:
    r, item = analysis.result, analysis.item
    # Cards hold 100RECNX/IMG_0001.JPG and 101RECNX/IMG_0001.JPG: name files by their place
    rel = _rel(item.path, directory)
    summary.images += 1
    summary.detections.update(d.category.value for d in r.detections)
    classes = [
        [(c.scientific_name, round(c.probability, 4)) for c in analysis.species[i].top]
        if i in analysis.species
        else []
        for i in range(len(r.detections))
    ]
    summary.results.append(ImageResult(rel, r, None, classes if any(classes) else []))
    if results_out is not None:
        results_out.write(json.dumps(_result_line(analysis), ensure_ascii=False) + "\n")
    if evidence is not None and analysis.events and analysis.image is not None and r.detections:
        evidence.save(
            image=analysis.image,
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
    r = analysis.result
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
        "file": str(analysis.item.path),
        "captured_at": analysis.item.captured_at.isoformat(),
        "time_source": analysis.item.time_source,
        "width": r.width,
        "height": r.height,
        "model": r.model,
        "inference_ms": round(r.inference_ms, 2),
        "detections": dets,
    }
