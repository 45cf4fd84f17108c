"""`edge scan`: process a folder of camera-trap images as one camera, in capture-time order."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tqdm import tqdm

from broker.validate import encode
from edge.config import NodeConfig
from edge.detect import Detector, create
from edge.ingest import MediaError
from edge.ingest.folder import scan_folder
from edge.pipeline import Analysis, Pipeline, build_rules

log = logging.getLogger(__name__)


@dataclass
class ScanSummary:
    """What a scan saw."""

    images: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    detections: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)


def scan(
    directory: Path,
    config: NodeConfig,
    *,
    camera: str,
    events_out: IO[str] | None = None,
    results_out: IO[str] | None = None,
    detector: Detector | None = None,
    progress: bool | None = None,
) -> ScanSummary:
    """Run the pipeline over every image; events are numbered 1..n in capture order."""
    items = scan_folder(directory, camera, config.tz)
    pipeline = Pipeline(
        config, detector or create(config.detector, config.model_store), build_rules(config)
    )
    summary = ScanSummary()
    seq = 0
    show = sys.stderr.isatty() if progress is None else progress
    for item in tqdm(items, desc="scan", unit="img", disable=not show):
        try:
            analysis = pipeline.analyse(item)
        except MediaError as exc:
            log.warning("%s: %s", item.path.name, exc)
            summary.failed[str(item.path)] = str(exc)
            if results_out is not None:
                results_out.write(json.dumps({"file": str(item.path), "failure": str(exc)}) + "\n")
            continue
        summary.images += 1
        summary.detections.update(d.category.value for d in analysis.result.detections)
        if results_out is not None:
            results_out.write(json.dumps(_result_line(analysis), ensure_ascii=False) + "\n")
        for ev in analysis.events:
            seq += 1
            ev = ev.model_copy(update={"seq": seq})
            summary.events[ev.rule or ev.kind.value] += 1
            if events_out is not None:
                events_out.write(encode(ev).decode("utf-8") + "\n")
    return summary


def _result_line(analysis: Analysis) -> dict[str, object]:
    r = analysis.result
    return {
        "file": str(analysis.item.path),
        "captured_at": analysis.item.captured_at.isoformat(),
        "time_source": analysis.item.time_source,
        "width": r.width,
        "height": r.height,
        "model": r.model,
        "inference_ms": round(r.inference_ms, 2),
        "detections": [
            {
                "category": d.category.value,
                "label": d.label,
                "score": round(d.score, 4),
                "bbox": [round(v, 5) for v in d.normalised(r.width, r.height)],
            }
            for d in r.detections
        ],
    }
