"""`wildwatch edge scan` on the real shared images: detections, events file, bad files."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.scan import scan
from tests.factories import node_config, parse_event
from wildwatch.cli import cli


@pytest.fixture()
def scan_dir(images_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "card"
    d.mkdir()
    for name in [
        "bird_coral_bird.jpg",
        "ct_ecoassist_car_dog.jpg",
        "ct_ecoassist_empty_night.jpg",
        "ct_md_channelislands_fox_night.jpg",
        "ct_ecoassist_vehicle.jpg",
    ]:
        shutil.copy(images_dir / name, d / name)
    data = (images_dir / "ct_ecoassist_person.jpg").read_bytes()
    (d / "broken.jpg").write_bytes(data[:5000])  # a half-written upload
    clips = images_dir.parent / "videos"
    shutil.copy(clips / "zamba_ct_gorongosa_106x60.avi", d / "clip.avi")
    return d


def test_scan_writes_megadetector_csv_and_evidence(
    scan_dir: Path, tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WILDWATCH_MODELS_DIR", str(models_dir))
    md, csv_path, evidence = tmp_path / "md.json", tmp_path / "out.csv", tmp_path / "evidence"
    result = CliRunner().invoke(
        cli,
        [
            "edge",
            "scan",
            str(scan_dir),
            "--camera",
            "cam-a",
            "--md-json",
            str(md),
            "--csv",
            str(csv_path),
            "--evidence",
            str(evidence),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(md.read_text())
    files = {img["file"]: img for img in doc["images"]}
    assert set(files) == {p.name for p in scan_dir.iterdir()}  # one result per image and clip
    assert (
        files["broken.jpg"]["detections"] is None and "truncated" in files["broken.jpg"]["failure"]
    )
    bird = files["bird_coral_bird.jpg"]["detections"]
    assert any(doc["detection_categories"][d["category"]] == "animal" for d in bird)
    assert all(0 <= v <= 1 for d in bird for v in d["bbox"])
    assert "clip.avi" in csv_path.read_text()
    frames = sorted(p.stem[:-9] for p in evidence.rglob("*.jpg") if "_crop" not in p.name)
    assert "ct_ecoassist_car_dog" in frames and "bird_coral_bird" in frames  # + content hash


def test_scan_writes_events_and_results(
    scan_dir: Path, tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WILDWATCH_MODELS_DIR", str(models_dir))
    events_out, results_out = tmp_path / "events.jsonl", tmp_path / "results.jsonl"
    config = tmp_path / "node.yaml"  # an old archive: believe EXIF times back to 2010
    config.write_text(
        "site: local\nnode: scan\ncameras: [{id: cam-a}]\ncapture_time_floor: 2010-01-01\n"
    )
    result = CliRunner().invoke(
        cli,
        [
            "edge",
            "scan",
            str(scan_dir),
            "--config",
            str(config),
            "--camera",
            "cam-a",
            "--events-out",
            str(events_out),
            "--results-out",
            str(results_out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "images: 6" in result.output and "failed: 1" in result.output

    events = [
        parse_event("wildwatch/v1/local/scan/event", line.encode())
        for line in events_out.read_text().splitlines()
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    by_source: dict[str, set[str]] = {}
    for e in events:
        by_source.setdefault(e.source, set()).add(e.rule or e.category)
    assert "bird" in by_source["bird_coral_bird.jpg"]
    assert {"dog", "free_roaming_dog"} <= by_source["ct_ecoassist_car_dog.jpg"]
    assert not by_source.get("ct_ecoassist_empty_night.jpg", set()) & {"bird", "dog", "person"}
    # capture-time order: the 2014 EXIF fox frame comes before the copies stamped now
    results = [json.loads(line) for line in results_out.read_text().splitlines()]
    assert Path(results[0]["file"]).name == "ct_md_channelislands_fox_night.jpg"
    assert results[0]["time_source"] == "exif"
    failures = [r for r in results if "failure" in r]
    assert len(failures) == 1 and "truncated" in failures[0]["failure"]
    night = next(r for r in results if r["file"].endswith("empty_night.jpg"))
    assert not [d for d in night["detections"] if d["category"] in ("bird", "dog", "person")]


def test_scan_without_models_says_how_to_install(
    scan_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WILDWATCH_MODELS_DIR", str(tmp_path / "empty-store"))
    result = CliRunner().invoke(cli, ["edge", "scan", str(scan_dir)])
    assert result.exit_code != 0
    assert "models import" in result.output


def test_same_name_in_two_card_folders_keeps_both(
    images_dir: Path, tmp_path: Path, models_dir: Path
) -> None:
    card = tmp_path / "sd"
    for folder, picture in (
        ("100RECNX", "ct_ecoassist_car_dog.jpg"),
        ("101RECNX", "ct_ecoassist_vehicle.jpg"),
    ):
        (card / folder).mkdir(parents=True)
        shutil.copy(images_dir / picture, card / folder / "IMG_0001.JPG")
    config = node_config(tmp_path / "data", models_dir)
    events, evidence = io.StringIO(), tmp_path / "evidence"
    summary = scan(
        card, config, camera="cam1", events_out=events, evidence_dir=evidence, progress=False
    )
    assert summary.images == 2
    frames = [p for p in evidence.rglob("IMG_0001_*.jpg") if "_crop" not in p.name]
    assert len(frames) == 2  # one annotated frame per picture, neither overwritten
    sources = {json.loads(line)["source"] for line in events.getvalue().splitlines()}
    assert sources == {"100RECNX/IMG_0001.JPG", "101RECNX/IMG_0001.JPG"}
