"""`wildwatch edge scan --md-json` on every shared image: what a camera-trap tool sees in the
exported file at the file's own threshold is what the pipeline decided (the events)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.export.megadetector import CATEGORY_THRESHOLDS_KEY, pipeline_thresholds
from surveillance.megadetector import SPECIES_FLOOR
from tests.edge.export.test_megadetector import check_format, validate_with_megadetector

pytestmark = pytest.mark.slow
FINE = ("bird", "dog")


@dataclass(frozen=True)
class Scan:
    """One real scan of the shared images: the MegaDetector file and the events."""

    images: list[str]
    doc: dict[str, Any]
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def scanned(images_dir: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    out = tmp_path_factory.mktemp("md_roundtrip")
    config = out / "node.yaml"
    config.write_text(
        "site: local\nnode: scan\ncameras: [{id: cam-a}]\n"
        f"data_dir: {json.dumps(str(out / 'data'))}\nmodel_store: {json.dumps(str(models_dir))}\n",
        encoding="utf-8",
    )
    md, events = out / "md.json", out / "events.jsonl"
    args = ["scan", str(images_dir), "--config", str(config), "--camera", "cam-a"]
    result = CliRunner().invoke(cli, [*args, "--md-json", str(md), "--events-out", str(events)])
    assert result.exit_code == 0, result.output
    return Scan(
        images=sorted(p.name for p in images_dir.iterdir() if p.is_file()),
        doc=json.loads(md.read_text(encoding="utf-8")),
        events=[json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()],
    )


def consumer_view(doc: dict[str, Any]) -> dict[str, set[str]]:
    """Per image, the categories a tool finds keeping detections at the file's typical
    threshold (as Timelapse does), bird and dog read from the fine classification."""
    typical = doc["info"]["detector_metadata"]["typical_detection_threshold"]
    names = doc["classification_categories"]
    seen: dict[str, set[str]] = {}
    for image in doc["images"]:
        found = set()
        for det in image["detections"] or []:
            if det["conf"] < typical:
                continue
            fine = [names[i] for i, _ in det.get("classifications", []) if names[i] in FINE]
            found.add(fine[0] if fine else doc["detection_categories"][det["category"]])
        seen[image["file"]] = found
    return seen


def pipeline_view(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per source image, the categories of its observation events (one per category seen)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for ev in events:
        if ev["kind"] == "observation":
            seen[ev["source"]].add(ev["category"])
    return seen


def test_tools_see_the_pipelines_decisions(scanned: Scan) -> None:
    exported = consumer_view(scanned.doc)
    decided = pipeline_view(scanned.events)
    assert set(exported) == set(scanned.images)
    assert set(decided) <= set(scanned.images)
    mismatched = {
        name: (exported[name], decided.get(name, set()))
        for name in scanned.images
        if exported[name] != decided.get(name, set())
    }
    assert mismatched == {}
    assert "bird" in exported["bird_coral_bird.jpg"]  # the user's report


def test_file_is_valid_and_states_the_pipelines_thresholds(scanned: Scan, images_dir: Path) -> None:
    doc = scanned.doc
    check_format(doc)
    validate_with_megadetector(doc)
    meta = doc["info"]["detector_metadata"]
    thresholds = {c.value: t for c, t in pipeline_thresholds().items()}
    assert meta[CATEGORY_THRESHOLDS_KEY] == thresholds
    assert meta["typical_detection_threshold"] == min(thresholds.values())
    names = doc["classification_categories"]
    for image in doc["images"]:
        for det in image["detections"] or []:
            pairs = [(names[i], p) for i, p in det.get("classifications", [])]
            fine = [n for n, _ in pairs if n in FINE]
            category = fine[0] if fine else doc["detection_categories"][det["category"]]
            assert det["conf"] >= meta[CATEGORY_THRESHOLDS_KEY][category]
            assert all(p >= SPECIES_FLOOR for n, p in pairs if n not in FINE)
            if fine:
                assert (fine[0], det["conf"]) in pairs
    # a camera-trap tool at the file's threshold finds the animals the pipeline found
    with (images_dir.parent / "labels.csv").open(encoding="utf-8") as f:
        labels = {row["file"]: row for row in csv.DictReader(f)}
    exported = consumer_view(doc)
    camtrap = [n for n, row in labels.items() if row["kind"].startswith("camtrap")]
    animals = [n for n in camtrap if labels[n]["animal"] == "1"]
    found = [n for n in animals if exported[n] & {"animal", "bird", "dog"}]
    assert len(found) / len(animals) >= 0.9, sorted(set(animals) - set(found))
