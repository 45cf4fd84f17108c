"""Labelled datasets (central/datasets.py): reviewed events with real evidence frames stored
through the real upload code, exported to a zip that is read back and checked by MegaDetector's
own validators (COCO Camera Traps integrity check, batch-output validator, sequence rule)."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import MAX_EVIDENCE, Category, EventPayload, EvidenceRef
from central import crud, dataset_formats, datasets, evidence, messages
from central.app import create_app
from central.commands import cli
from central.config import CentralConfig
from central.db.models import REVIEW_CONFIRMED, REVIEW_DISMISSED
from edge.detect.types import Detection
from edge.evidence import EvidenceStore
from edge.ingest import load_image
from tests.central.conftest import make_event
from tests.central.staff import auth, with_staff

TZ = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 11, 20, 7, 0, tzinfo=TZ)  # inside the window of 2026-11-20
EGRET = {"scientific_name": "Egretta garzetta", "chinese_name": "白鹭", "confidence": 0.9}


def box(
    category: str, x: float = 0.3, y: float = 0.2, w: float = 0.25, h: float = 0.4
) -> dict[str, Any]:
    return {"x": x, "y": y, "w": w, "h": h, "category": category, "label": category}


@pytest.fixture()
def config(central_config: CentralConfig, tmp_path: Path) -> CentralConfig:
    data = central_config.model_dump(mode="json")
    data["evidence"] = {"storage_dir": str(tmp_path / "evidence")}
    return with_staff(CentralConfig.model_validate(data))


@dataclass
class Station:
    """The seeded events by role, and the image files their frames are."""

    ids: dict[str, str]
    frames: dict[str, Path]


def _store(
    session: Session, config: CentralConfig, event: EventPayload, files: dict[str, bytes]
) -> None:
    """Store the event's evidence through the real upload code (one chunk a file)."""
    for name, body in files.items():
        evidence.receive_chunk(
            session=session,
            config=config,
            event_id=str(event.event_id),
            name=name,
            uploader=(event.site, event.node),
            chunk=evidence.ChunkRange(0, len(body) - 1, len(body)),
            sha256=hashlib.sha256(body).hexdigest(),
            body=body,
            now=datetime.now(UTC),
        )


def _event(
    *,
    at: datetime,
    files: dict[str, bytes],
    boxes: list[dict[str, Any]],
    **over: Any,
) -> EventPayload:
    refs = [
        EvidenceRef(name=n, sha256=hashlib.sha256(b).hexdigest(), size=len(b))
        for n, b in files.items()
    ]
    anomaly = {"kind": "anomaly", "severity": "warning"} if "rule" in over else {}
    data: dict[str, Any] = {
        "kind": "observation",
        **anomaly,
        "captured_at": at,
        "created_at": at + timedelta(seconds=3),
        "boxes": [{**b, "confidence": 0.8} for b in boxes],
        "evidence": refs,
    }
    data.update(over)
    return make_event(**data)


@pytest.fixture()
def station(
    config: CentralConfig, session_factory: sessionmaker[Session], images_dir: Path
) -> Station:
    """Nine events at two sites around 2026-11-20 07:00 (Shanghai), reviewed in every way."""
    jpgs = sorted(images_dir.glob("*.jpg"))
    pick = {p.name: p for p in jpgs}
    frames = {
        "egret": pick["bird_coral_bird.jpg"],
        "dog": pick["ct_ecoassist_car_dog.jpg"],
        "background": pick["ct_ecoassist_empty_night.jpg"],
        "wrong": pick["bird_coral_owl.jpg"],
        "duplicate": pick["bird_coral_parrot.jpg"],
        "unreviewed": pick["ct_ecoassist_animal_night.jpg"],
        "person": pick["ct_ecoassist_person.jpg"],
        "outside": pick["ct_ecoassist_vehicle.jpg"],
        "named": pick["ct_ena24_2480.jpg"],
    }
    earlier = pick["ct_ena24_2480.jpg"].read_bytes()
    crop = pick["ct_ena24_2573.jpg"].read_bytes()

    boxes_of = {"dog": 2, "named": 2}  # every other frame has one detection

    def files(role: str, stem: str) -> dict[str, bytes]:
        # as a node lists them: an earlier frame of the burst, this frame, then its crops (one
        # per detection of the frame; here the event's boxes are all of them)
        return {
            "IMG_0001_aa.jpg": earlier,
            f"{stem}.jpg": frames[role].read_bytes(),
            **{f"{stem}_crop{i}.jpg": crop for i in range(boxes_of.get(role, 1))},
        }

    made = {
        "egret": _event(
            at=T, files=files("egret", "IMG_0002_bb"), boxes=[box("bird")], species=EGRET
        ),
        # 30 s later on the same camera: the same sequence
        "dog": _event(
            at=T + timedelta(seconds=30),
            files=files("dog", "IMG_0003_cc"),
            boxes=[box("dog", 0.1, 0.5, 0.3, 0.3), box("vehicle", 0.6, 0.1, 0.5, 0.5)],
            rule="free_roaming_dog",
            category="dog",
            seq=2,
        ),
        # 5 minutes later: a new sequence
        "background": _event(
            at=T + timedelta(minutes=5),
            files=files("background", "IMG_0004_dd"),
            boxes=[box("bird")],
            seq=3,
        ),
        "wrong": _event(
            at=T + timedelta(seconds=10),
            files=files("wrong", "IMG_0005_ee"),
            boxes=[box("bird")],
            species=EGRET,
            camera="cam2",
            seq=4,
        ),
        "duplicate": _event(
            at=T + timedelta(minutes=7), files=files("duplicate", "IMG_6"), boxes=[box("bird")]
        ),
        "unreviewed": _event(
            at=T + timedelta(minutes=8), files=files("unreviewed", "IMG_7"), boxes=[box("bird")]
        ),
        "no_image": _event(at=T + timedelta(minutes=9), files={}, boxes=[box("bird")]),
        "person": _event(
            at=T + timedelta(minutes=1),
            files=files("person", "IMG_8"),
            boxes=[box("person")],
            site="xiazhuhu",
            node="xz-01",
            camera="lake-east",
            rule="night_intrusion",
            category="person",
        ),
        "outside": _event(
            at=T - timedelta(days=2), files=files("outside", "IMG_9"), boxes=[box("vehicle")]
        ),
        # two birds; the reviewer names the second a great egret, the node said little egret
        "named": _event(
            at=T + timedelta(minutes=20),
            files=files("named", "IMG_10"),
            boxes=[box("bird", 0.1, 0.1, 0.2, 0.2), box("bird", 0.5, 0.5, 0.2, 0.2)],
            species=EGRET,
            camera="cam3",
        ),
    }
    named = {"named": ("Ardea alba", 1)}
    decisions: dict[str, list[tuple[str, str | None]]] = {
        "egret": [(REVIEW_CONFIRMED, None)],
        "dog": [(REVIEW_CONFIRMED, None)],
        "background": [(REVIEW_DISMISSED, "background")],
        # first called background, then corrected: the latest decision's reason counts
        "wrong": [(REVIEW_DISMISSED, "background"), (REVIEW_DISMISSED, "wrong_species")],
        "duplicate": [(REVIEW_DISMISSED, "duplicate")],
        "no_image": [(REVIEW_CONFIRMED, None)],
        "person": [(REVIEW_CONFIRMED, None)],
        "outside": [(REVIEW_CONFIRMED, None)],
        "named": [(REVIEW_CONFIRMED, None)],
    }
    with session_factory() as session:
        for role, event in made.items():
            crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
            session.commit()
            if role != "no_image":
                _store(session, config, event, _bodies(event, files(role, _stem(event))))
            for i, (decision, reason) in enumerate(decisions.get(role, [])):
                crud.review_event(
                    session=session,
                    event_id=str(event.event_id),
                    decision=decision,
                    reviewer="王五",
                    note="",
                    at=datetime(2026, 11, 21, 8, i, tzinfo=UTC),
                    reason=reason,
                    species=named[role][0] if role in named else None,
                    box_index=named[role][1] if role in named else None,
                )
            session.commit()
    return Station({k: str(v.event_id) for k, v in made.items()}, frames)


def _stem(event: EventPayload) -> str:
    return next(r.name for r in event.evidence if r.name.endswith("_crop0.jpg"))[
        : -len("_crop0.jpg")
    ]


def _bodies(event: EventPayload, files: dict[str, bytes]) -> dict[str, bytes]:
    return {r.name: files[r.name] for r in event.evidence}


def _export(
    config: CentralConfig,
    session_factory: sessionmaker[Session],
    out: Path,
    sites: set[str] | None = None,
) -> datasets.Summary:
    since, until = datasets.day_window(date(2026, 11, 20), date(2026, 11, 20), TZ)
    with session_factory() as session:
        return datasets.export(
            session=session,
            evidence_dir=config.evidence_dir,
            tz=TZ,
            since=since,
            until=until,
            out=out,
            sites=sites,
            station="湖州市监测站",
            catalogue=config.species_catalogue,
        )


def _read(path: Path, into: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with zipfile.ZipFile(path) as zf:
        zf.extractall(into)
        coco = json.loads(zf.read(datasets.COCO_NAME))
        md = json.loads(zf.read(datasets.MD_NAME))
    return coco, md


@pytest.fixture()
def exported(
    config: CentralConfig,
    session_factory: sessionmaker[Session],
    station: Station,
    tmp_path: Path,
) -> Iterator[tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path]]:
    summary = _export(config, session_factory, tmp_path / "out" / "set.zip")
    coco, md = _read(summary.path, tmp_path / "unzipped")
    yield summary, coco, md, tmp_path / "unzipped"


def test_only_labelled_frames_go_in_with_their_images(
    exported: tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path], station: Station
) -> None:
    summary, coco, _md, root = exported
    ids = station.ids
    assert {im["id"] for im in coco["images"]} == {
        ids[k] for k in ("egret", "dog", "background", "wrong", "person", "named")
    }
    assert summary.images == 6 and summary.empty == 1
    # the duplicate is left out for its reason, the confirmed event without evidence for that
    assert summary.skipped == {"review": 1, "no_image": 1}
    by_id = {im["id"]: im for im in coco["images"]}
    for role in ("egret", "dog", "background", "wrong", "person"):
        image = by_id[ids[role]]
        extracted = root / image["file_name"]
        # the event's own frame (not the earlier frame or the crop), byte for byte
        assert extracted.read_bytes() == station.frames[role].read_bytes()
        with Image.open(extracted) as im:
            assert im.size == (image["width"], image["height"])
    assert by_id[ids["egret"]]["datetime"] == "2026-11-20 07:00:00"
    assert by_id[ids["person"]]["location"] == "xiazhuhu/lake-east"
    assert not list(summary.path.parent.glob("*.part")), "no temporary file left beside it"


def test_labels_follow_the_review(
    exported: tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path], station: Station
) -> None:
    _summary, coco, _md, _root = exported
    names = {c["id"]: c for c in coco["categories"]}
    assert names[0]["name"] == "empty"
    ann: dict[str, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        ann.setdefault(a["image_id"], []).append(a)
    ids = station.ids

    def labels(role: str) -> list[str]:
        return [names[a["category_id"]]["name"] for a in ann[ids[role]]]

    assert labels("egret") == ["Egretta garzetta"]
    egret = next(c for c in coco["categories"] if c["name"] == "Egretta garzetta")
    assert egret["name_zh"] == "白鹭" and egret["supercategory"] == "bird"
    assert labels("dog") == ["dog", "vehicle"]
    assert labels("background") == ["empty"] and "bbox" not in ann[ids["background"]][0]
    assert labels("wrong") == ["bird"], "wrong species: the bird stays, its species does not"
    assert labels("person") == ["person"]
    # the species the reviewer named, on the box named; the node's guess not on the other
    assert labels("named") == ["bird", "Ardea alba"]
    great = next(c for c in coco["categories"] if c["name"] == "Ardea alba")
    assert great["name_zh"] == "大白鹭", "the Chinese name from the catalogue"
    # boxes in absolute pixels, inside the image, the normalised box times the image size
    images = {im["id"]: im for im in coco["images"]}
    for a in coco["annotations"]:
        if "bbox" not in a:
            continue
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0
        assert x + w <= im["width"] + 0.05 and y + h <= im["height"] + 0.05
    (egret_box,) = ann[ids["egret"]]
    im = images[ids["egret"]]
    assert egret_box["bbox"] == pytest.approx(
        [0.3 * im["width"], 0.2 * im["height"], 0.25 * im["width"], 0.4 * im["height"]], abs=0.06
    )
    # the vehicle box runs off the right edge: clipped to the image
    vehicle = ann[ids["dog"]][1]
    dog_im = images[ids["dog"]]
    assert vehicle["bbox"][0] + vehicle["bbox"][2] == pytest.approx(dog_im["width"], abs=0.06)


def test_sequences_follow_megadetectors_rule(
    exported: tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path], station: Station
) -> None:
    cct = pytest.importorskip("megadetector.data_management.cct_json_utils")
    summary, coco, _md, _root = exported
    by_id = {im["id"]: im for im in coco["images"]}
    ids = station.ids
    egret, dog, background = (by_id[ids[k]] for k in ("egret", "dog", "background"))
    assert egret["seq_id"] == dog["seq_id"] != background["seq_id"]
    assert (egret["seq_num_frames"], egret["frame_num"], dog["frame_num"]) == (2, 0, 1)
    assert background["seq_num_frames"] == 1
    assert by_id[ids["wrong"]]["seq_id"] != egret["seq_id"], "another camera"
    assert summary.sequences == 5
    # MegaDetector's own sequencing of the same images groups them the same way
    theirs = copy.deepcopy(coco["images"])
    cct.create_sequences(theirs)

    def groups(images: list[dict[str, Any]]) -> set[frozenset[str]]:
        found: dict[str, set[str]] = {}
        for im in images:
            found.setdefault(im["seq_id"], set()).add(im["id"])
        return {frozenset(g) for g in found.values()}

    assert groups(theirs) == groups(coco["images"])
    assert {im["id"]: im["frame_num"] for im in theirs} == {
        im["id"]: im["frame_num"] for im in coco["images"]
    }


def test_coco_camera_traps_passes_megadetectors_integrity_check(
    exported: tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path],
) -> None:
    check = pytest.importorskip("megadetector.data_management.integrity_check_json_db")
    _summary, _coco, _md, root = exported
    options = check.IntegrityCheckOptions()
    options.baseDir = str(root)
    options.bCheckImageSizes = True  # opens every image: exists and has the size we wrote
    options.bCheckImageExistence = True
    options.bFindUnusedImages = True
    options.bRequireLocation = True
    options.requireInfo = True
    options.validateBoxes = "error"
    options.nThreads = 1
    options.verbose = False
    sorted_categories, data, error_info = check.integrity_check_json_db(
        str(root / datasets.COCO_NAME), options
    )
    assert error_info["validation_errors"] == []
    assert error_info["unused_files"] == [], "every image in the zip is in the database"
    used = {c["name"]: c["_count"] for c in sorted_categories if c["_count"]}
    assert used == {
        "Egretta garzetta": 1,
        "dog": 1,
        "vehicle": 1,
        "empty": 1,
        "bird": 2,
        "person": 1,
        "Ardea alba": 1,
    }
    assert len(data["images"]) == 6


def test_megadetector_file_carries_the_reviewed_labels(
    exported: tuple[datasets.Summary, dict[str, Any], dict[str, Any], Path], station: Station
) -> None:
    vbr = pytest.importorskip("megadetector.postprocessing.validate_batch_results")
    _summary, coco, md, root = exported
    options = vbr.ValidateBatchResultsOptions()
    options.check_image_existence = True
    options.relative_path_base = str(root)
    result = vbr.validate_batch_results(str(root / datasets.MD_NAME), options)["validation_results"]
    assert result["errors"] == [] and result["warnings"] == []
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    images = {im["file"]: im for im in md["images"]}
    classes = md["classification_categories"]
    egret = images[files[station.ids["egret"]]]
    (det,) = egret["detections"]
    assert det["conf"] == 1.0 and md["detection_categories"][det["category"]] == "animal"
    assert det["bbox"] == [0.3, 0.2, 0.25, 0.4]
    assert [classes[c] for c, _ in det["classifications"]] == ["bird", "Egretta garzetta"]
    assert images[files[station.ids["background"]]]["detections"] == []
    (wrong,) = images[files[station.ids["wrong"]]]["detections"]
    assert [classes[c] for c, _ in wrong["classifications"]] == ["bird"]
    dog, vehicle = images[files[station.ids["dog"]]]["detections"]
    assert md["detection_categories"][vehicle["category"]] == "vehicle"
    assert [classes[c] for c, _ in dog["classifications"]] == ["dog"]


def test_sites_limit_the_export(
    config: CentralConfig, session_factory: sessionmaker[Session], station: Station, tmp_path: Path
) -> None:
    summary = _export(config, session_factory, tmp_path / "xz.zip", sites={"xiazhuhu"})
    coco, _md = _read(summary.path, tmp_path / "xz")
    assert [im["id"] for im in coco["images"]] == [station.ids["person"]]
    with zipfile.ZipFile(summary.path) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".jpg")]) == 1


def test_a_failed_export_leaves_the_previous_file(
    config: CentralConfig, session_factory: sessionmaker[Session], station: Station, tmp_path: Path
) -> None:
    out = tmp_path / "set.zip"
    out.write_bytes(b"the previous export")
    # one frame gone from the disk after it was read: writing the zip fails half-way
    frame = next((config.evidence_dir / "changxing").rglob("IMG_0004_dd.jpg"))
    with session_factory() as session:
        since, until = datasets.day_window(date(2026, 11, 20), date(2026, 11, 20), TZ)
        frames = list(
            datasets.collect(
                session=session, evidence_dir=config.evidence_dir, since=since, until=until
            )
        )
    frame.unlink()
    info = {"description": "x", "date_created": "2026-11-21T00:00:00+00:00"}
    with pytest.raises(FileNotFoundError):
        datasets.write_package(frames, out, tz=TZ, info=info)
    assert out.read_bytes() == b"the previous export"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".set.zip")] == []


def test_command_line_writes_the_zip(
    config: CentralConfig, station: Station, tmp_path: Path
) -> None:
    path = tmp_path / "central.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True))
    out = tmp_path / "cli" / "set.zip"
    args = ["export", "coco", "--config", str(path), "--since", "2026-11-20"]
    result = CliRunner().invoke(cli, [*args, "--until", "2026-11-20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "images 6" in result.output and "left out: no_image 1, review 1" in result.output
    with zipfile.ZipFile(out) as zf:
        assert {datasets.COCO_NAME, datasets.MD_NAME} <= set(zf.namelist())
    # the day before: nothing but the empty database (the event two days back stays out)
    result = CliRunner().invoke(
        cli, [*args[:-1], "2026-11-19", "--until", "2026-11-19", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read(datasets.COCO_NAME))["images"] == []
    bad = CliRunner().invoke(cli, [*args, "--until", "2026-11-19", "--out", str(out)])
    assert bad.exit_code != 0 and "--until" in bad.output


def test_api_download_is_limited_to_the_tokens_sites(
    config: CentralConfig, session_factory: sessionmaker[Session], station: Station, tmp_path: Path
) -> None:
    query = {"since": "2026-11-20T00:00:00+08:00", "until": "2026-11-21T00:00:00+08:00"}
    url = "/api/datasets/coco-camera-traps.zip"
    exports = config.data_dir / "exports"
    exports.mkdir(parents=True)
    # a download whose client went away (hours ago), and one still being sent to another
    stale, sending = exports / "dataset-gone.zip", exports / "dataset-sending.zip"
    stale.write_bytes(b"zip")
    sending.write_bytes(b"zip")
    # the half-written temporary file of an export a crash stopped, hours ago
    crashed = exports / ".dataset-gone2.zip.x1y2z3.part"
    crashed.write_bytes(b"half a zip")
    hours_ago = time.time() - datasets.STALE_DOWNLOAD_S - 60
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(crashed, (hours_ago, hours_ago))
    with TestClient(create_app(config=config, session_factory=session_factory)) as client:
        assert client.get(url, params=query).status_code == 401
        everyone = client.get(url, params=query, headers=auth("王五"))
        assert everyone.status_code == 200, everyone.text
        assert everyone.headers["content-type"] == "application/zip"
        assert "wildwatch-coco-20261120-20261120.zip" in everyone.headers["content-disposition"]
        lake = client.get(url, params=query, headers=auth("钱七"))  # xiazhuhu only
        other = client.get(url, params={**query, "site": "changxing"}, headers=auth("钱七"))
        long = {**query, "since": "2024-01-01T00:00:00+08:00"}
        too_long = client.get(url, params=long, headers=auth("王五"))
    (tmp_path / "all.zip").write_bytes(everyone.content)
    (tmp_path / "lake.zip").write_bytes(lake.content)
    (tmp_path / "other.zip").write_bytes(other.content)
    coco, _ = _read(tmp_path / "all.zip", tmp_path / "all")
    assert len(coco["images"]) == 6
    coco, _ = _read(tmp_path / "lake.zip", tmp_path / "lake")
    assert [im["id"] for im in coco["images"]] == [station.ids["person"]]
    coco, _ = _read(tmp_path / "other.zip", tmp_path / "other")
    assert coco["images"] == [], "another site's frames are not there"
    assert too_long.status_code == 422 and "366" in too_long.json()["detail"]
    # each download removed once sent, the stale one by the next download
    assert list(exports.iterdir()) == [sending]


def _frame_files(images_dir: Path, stem: str, frame: str, crops: int) -> dict[str, bytes]:
    """As a node uploads a frame: the frame, then one crop per detection of the frame."""
    sources = ["ct_ena24_2573.jpg", "ct_ena24_2480.jpg", "bird_coral_owl.jpg"]
    files = {f"{stem}.jpg": (images_dir / frame).read_bytes()}
    for i in range(crops):
        files[f"{stem}_crop{i}.jpg"] = (images_dir / sources[i % len(sources)]).read_bytes()
    return files


def _reviewed(
    config: CentralConfig,
    session_factory: sessionmaker[Session],
    event: EventPayload,
    files: dict[str, bytes],
    decision: str,
    **review: Any,
) -> str:
    """Store `event` with its evidence and record one review decision."""
    with session_factory() as session:
        crud.insert_event(session=session, payload=event, received_at=datetime.now(UTC))
        session.commit()
        _store(session, config, event, files)
        crud.review_event(
            session=session,
            event_id=str(event.event_id),
            decision=decision,
            reviewer="王五",
            note="",
            at=datetime(2026, 11, 21, 8, tzinfo=UTC),
            **review,
        )
        session.commit()
    return str(event.event_id)


def _labels(coco: dict[str, Any]) -> dict[str, list[str]]:
    """Image id -> the names of its annotations' categories, in order."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    found: dict[str, list[str]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        found[a["image_id"]].append(names[a["category_id"]])
    return found


def test_a_rule_whose_boxes_may_mix_species_labels_only_the_box_the_reviewer_named(
    config: CentralConfig, session_factory: sessionmaker[Session], images_dir: Path, tmp_path: Path
) -> None:
    """abnormal_count keeps every bird of the frame and names the species whose count surged;
    high_risk_species every high-risk bird with the best-scoring one's species: the node's
    species is not every box's, so only the reviewer's named species labels a box."""
    two = [box("bird", 0.1, 0.1, 0.2, 0.2), box("bird", 0.5, 0.5, 0.2, 0.2)]
    surge = _event(
        at=T,
        files=(files := _frame_files(images_dir, "IMG_20_aa", "bird_coral_bird.jpg", 2)),
        boxes=two,
        rule="abnormal_count",
        species=EGRET,
        count=2,
    )
    surge_id = _reviewed(config, session_factory, surge, files, REVIEW_CONFIRMED)
    risk = _event(
        at=T + timedelta(minutes=5),
        files=(files := _frame_files(images_dir, "IMG_21_bb", "bird_coral_owl.jpg", 2)),
        boxes=two,
        rule="high_risk_species",
        species=EGRET,
        count=2,
        seq=2,
    )
    risk_id = _reviewed(
        config,
        session_factory,
        risk,
        files,
        REVIEW_CONFIRMED,
        species="Ardea alba",
        box_index=1,
    )
    summary = _export(config, session_factory, tmp_path / "set.zip")
    coco, _md = _read(summary.path, tmp_path / "unzipped")
    labels = _labels(coco)
    assert labels[surge_id] == ["bird", "bird"], "the surging species is not every bird's"
    assert labels[risk_id] == ["bird", "Ardea alba"], "the named box only"


def test_a_frame_with_detections_of_other_events_is_left_out_as_partial(
    config: CentralConfig, session_factory: sessionmaker[Session], images_dir: Path, tmp_path: Path
) -> None:
    """The node uploads a frame once, with its most severe event, and a crop per detection of
    the frame: when that event has fewer boxes, other events' animals are on the frame too."""
    # a motionless bird beside another bird: dismissed as background, the frame is not empty
    still = _event(
        at=T,
        files=(files := _frame_files(images_dir, "IMG_30_aa", "bird_coral_bird.jpg", 2)),
        boxes=[box("bird", 0.1, 0.1, 0.2, 0.2)],
    )
    still_id = _reviewed(
        config, session_factory, still, files, REVIEW_DISMISSED, reason="background"
    )
    # confirmed, one box of a frame with three detections: the others would go unannotated
    one = _event(
        at=T + timedelta(minutes=5),
        files=(files := _frame_files(images_dir, "IMG_31_bb", "bird_coral_owl.jpg", 3)),
        boxes=[box("bird", 0.1, 0.1, 0.2, 0.2)],
        seq=2,
    )
    _reviewed(config, session_factory, one, files, REVIEW_CONFIRMED)
    # every detection of the frame is the event's: in, and empty
    alone = _event(
        at=T + timedelta(minutes=10),
        files=(files := _frame_files(images_dir, "IMG_32_cc", "bird_coral_parrot.jpg", 1)),
        boxes=[box("bird")],
        seq=3,
    )
    alone_id = _reviewed(
        config, session_factory, alone, files, REVIEW_DISMISSED, reason="background"
    )
    summary = _export(config, session_factory, tmp_path / "set.zip")
    coco, _md = _read(summary.path, tmp_path / "unzipped")
    assert [im["id"] for im in coco["images"]] == [alone_id]
    assert _labels(coco) == {alone_id: ["empty"]}
    assert summary.skipped == {"partial": 2} and summary.empty == 1
    assert still_id not in {a["image_id"] for a in coco["annotations"]}


def test_a_motionless_birds_made_up_box_with_another_detections_crop_is_partial(
    config: CentralConfig, session_factory: sessionmaker[Session], images_dir: Path, tmp_path: Path
) -> None:
    """The detector missed the still bird (its box made up from the track) and found another
    bird: one box, one crop, but the other bird is on the frame unlabelled. The node's own
    evidence store cuts the crops."""
    image = images_dir / "ct_ena24_7951.jpg"  # 2048 x 1536, stored scaled to 1920
    bird, other = (492, 717, 791, 996), (1400, 200, 1900, 500)
    ids = {}
    for n, detected in enumerate((other, bird)):
        stem = f"IMG_4{n}_aa"
        saved = EvidenceStore(tmp_path / f"node{n}").save(
            image=load_image(image),
            detections=[_bird(detected)],
            camera="cam1",
            day="2026-11-20",
            stem=stem,
        )
        files = {p.name: p.read_bytes() for p in (saved.frame, *saved.crops)}
        x, y, w, h = _bird(bird).normalised(2048, 1536)
        event = _event(
            at=T + timedelta(minutes=5 * n),
            files=files,
            boxes=[{**box("bird"), "x": x, "y": y, "w": w, "h": h}],
            rule="motionless_bird",
            seq=n + 1,
        )
        ids[detected] = _reviewed(
            config, session_factory, event, files, REVIEW_DISMISSED, reason="background"
        )
    summary = _export(config, session_factory, tmp_path / "set.zip")
    coco, _md = _read(summary.path, tmp_path / "unzipped")
    assert _labels(coco) == {ids[bird]: ["empty"]}
    assert summary.skipped == {"partial": 1}


def _bird(corners: tuple[int, int, int, int]) -> Detection:
    return Detection(*corners, score=0.8, class_id=14, label="bird", category=Category.BIRD)


def test_whole_frame_counts_the_frames_crops() -> None:
    listed = ["IMG_1_aa.jpg", "IMG_2_bb.jpg", "IMG_2_bb_crop0.jpg", "IMG_2_bb_crop1.jpg"]
    assert datasets.whole_frame("IMG_2_bb.jpg", listed, 2)
    assert not datasets.whole_frame("IMG_2_bb.jpg", listed, 1)
    assert not datasets.whole_frame("IMG_1_aa.jpg", listed, 1), "another frame's crops"
    # a list cut at MAX_EVIDENCE may have lost crops: never whole
    full = ["IMG_3_cc.jpg", *(f"IMG_3_cc_crop{i}.jpg" for i in range(7))]
    assert len(full) == MAX_EVIDENCE and not datasets.whole_frame("IMG_3_cc.jpg", full, 7)
    assert datasets.whole_frame("IMG_3_cc.jpg", full[:-1], 6)


def test_frame_name_picks_the_frame_its_crops_come_from() -> None:
    listed = ["IMG_1_aa.jpg", "IMG_2_bb.jpg", "IMG_2_bb_crop0.jpg", "IMG_2_bb_crop1.jpg"]
    assert datasets.frame_name(listed, set(listed)) == "IMG_2_bb.jpg"
    # the frame not stored (given up by the node): the last full frame that is
    assert datasets.frame_name(listed, {"IMG_1_aa.jpg", "IMG_2_bb_crop0.jpg"}) == "IMG_1_aa.jpg"
    assert datasets.frame_name(["a_crop0.jpg"], {"a_crop0.jpg"}) is None
    # an event that lists nothing (older nodes): its stored files in name order
    assert datasets.frame_name([], {"b.jpg", "b_crop0.jpg"}) == "b.jpg"


def test_species_of_boxes() -> None:
    node, named = (
        dataset_formats.Species("Egretta garzetta", "白鹭"),
        dataset_formats.Species("Ardea alba", ""),
    )
    assert datasets.species_of_boxes(2, node=node, named=None, named_box=None) == [node, node]
    assert datasets.species_of_boxes(2, node=node, named=named, named_box=None) == [named, None]
    assert datasets.species_of_boxes(3, node=None, named=named, named_box=2) == [None, None, named]
    # the reviewer confirms the node's species on one box: the others keep it too
    same = dataset_formats.Species("Egretta garzetta", "白鹭")
    assert datasets.species_of_boxes(2, node=node, named=same, named_box=1) == [node, same]
    # boxes that may show several species (abnormal_count, high_risk_species, ...): the node's
    # species on no box, the named one on its box only
    mixed = functools.partial(datasets.species_of_boxes, node=node, shared=False)
    assert mixed(2, named=None, named_box=None) == [None, None]
    assert mixed(2, named=same, named_box=1) == [None, same]
    assert dataset_formats.one_species("observation", None)
    assert dataset_formats.one_species("anomaly", "motionless_bird")
    for rule in ("abnormal_count", "high_risk_species", "mortality_cluster", "static_object"):
        assert not dataset_formats.one_species("anomaly", rule)


def test_labelling_of_each_decision() -> None:
    assert datasets.labelling(REVIEW_CONFIRMED, None) is dataset_formats.Labelling.CONFIRMED
    assert (
        datasets.labelling(REVIEW_DISMISSED, "background") is dataset_formats.Labelling.BACKGROUND
    )
    assert (
        datasets.labelling(REVIEW_DISMISSED, "wrong_species")
        is dataset_formats.Labelling.WRONG_SPECIES
    )
    assert datasets.labelling(REVIEW_DISMISSED, "duplicate") is None
    assert datasets.labelling(REVIEW_DISMISSED, None) is None
    assert datasets.labelling("unreviewed", None) is None


def test_pixel_box_is_clipped_and_empty_boxes_dropped() -> None:
    inside = dataset_formats.LabelledBox(Category.BIRD, 0.5, 0.5, 0.25, 0.5, None)
    assert dataset_formats.pixel_box(inside, 200, 100) == [100.0, 50.0, 50.0, 50.0]
    over = dataset_formats.LabelledBox(Category.BIRD, 0.9, -0.1, 0.2, 0.3, None)
    assert dataset_formats.pixel_box(over, 200, 100) == [180.0, 0.0, 20.0, 20.0]
    outside = dataset_formats.LabelledBox(Category.BIRD, 1.0, 0.2, 0.1, 0.1, None)
    assert dataset_formats.pixel_box(outside, 200, 100) is None


def test_window_checks() -> None:
    since, until = datasets.day_window(date(2026, 11, 1), date(2026, 11, 30), TZ)
    assert since == datetime(2026, 11, 1, tzinfo=TZ) and until == datetime(2026, 12, 1, tzinfo=TZ)
    assert datasets.check_window(since, until) is None
    assert datasets.check_window(until, since) == messages.DATASET_BAD_WINDOW
    assert datasets.check_window(since, since + timedelta(days=400)) is not None
    assert datasets.download_name(since, until, TZ) == "wildwatch-coco-20261101-20261130.zip"
