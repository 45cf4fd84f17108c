"""What the staff taught, read from the database: confirmed birds' crops and their species."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from broker.payloads import MAX_EVIDENCE, Category
from central.gallery import crop_fits, taught_crops
from edge.detect.types import Detection
from edge.evidence import EvidenceStore
from edge.ingest import load_image
from models.species import load_catalogue
from tests.central.gallery_events import BIRD_BOX, store_event


@pytest.fixture()
def two_birds(images_dir: Path) -> tuple[bytes, bytes]:
    """Two real bird pictures, stored as the crops of a two-box event."""
    names = ("bird_coral_bird.jpg", "bird_coral_owl.jpg")
    first, second = ((images_dir / n).read_bytes() for n in names)
    return first, second


def test_confirmed_crops_carry_the_species_the_reviewer_named_or_confirmed(
    session_factory: sessionmaker[Session], tmp_path: Path, two_birds: tuple[bytes, bytes]
) -> None:
    evidence = tmp_path / "evidence"
    first, second = two_birds
    with session_factory.begin() as session:
        corrected = store_event(
            session,
            evidence,
            crops=[first, second],
            boxes=2,
            species="Egretta garzetta",
            named="Nipponia nippon",
            box_index=1,
        )
        confirmed = store_event(session, evidence, crops=[first], species="Egretta garzetta")
        store_event(session, evidence, crops=[first], species="Ardea alba", decision="dismissed")
        store_event(session, evidence, crops=[first], species="Ardea alba", decision=None)
        unsure = store_event(session, evidence, crops=[first, second], species="Ardea alba")
        mammal = store_event(
            session, evidence, crops=[first], named="Nyctereutes procyonoides", box_index=0
        )
    with session_factory() as session:
        taught = taught_crops(session=session, evidence_dir=evidence, catalogue=load_catalogue())
    assert [(c.label, c.source) for c in taught.crops] == [
        ("Nipponia nippon", f"{corrected}#1"),
        ("Egretta garzetta", f"{confirmed}#0"),
    ]
    # the named box's own crop, read from the evidence store
    assert taught.crops[0].path.read_bytes() == second
    assert taught.crops[1].path.read_bytes() == first
    assert set(taught.skipped) == {unsure, mammal}
    assert "2 crops for 1 boxes" in taught.skipped[unsure]
    assert "not a bird species" in taught.skipped[mammal]
    with session_factory() as session:
        other_site = taught_crops(
            session=session, evidence_dir=evidence, catalogue=load_catalogue(), sites=["xiazhuhu"]
        )
    assert other_site.crops == [] and other_site.skipped == {}


def test_a_rule_whose_boxes_may_mix_species_teaches_only_the_named_box(
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    images_dir: Path,
    two_birds: tuple[bytes, bytes],
) -> None:
    """abnormal_count and high_risk_species name one species among the frame's birds (the
    surging, the best-scoring one): their first box is not known to be it. A motionless bird
    is one bird: its node species, confirmed, is taught."""
    evidence = tmp_path / "evidence"
    first, second = two_birds
    with session_factory.begin() as session:
        surge = store_event(
            session,
            evidence,
            crops=[first, second],
            boxes=2,
            species="Egretta garzetta",
            rule="abnormal_count",
        )
        risky = store_event(
            session,
            evidence,
            crops=[first, second],
            boxes=2,
            species="Egretta garzetta",
            rule="high_risk_species",
            named="Ardea alba",
            box_index=1,
        )
        still = _node_event(
            session, evidence, tmp_path, images_dir / "bird_coral_owl.jpg", (120, 60, 300, 330)
        )
    with session_factory() as session:
        taught = taught_crops(session=session, evidence_dir=evidence, catalogue=load_catalogue())
    assert [(c.label, c.source) for c in taught.crops] == [
        ("Ardea alba", f"{risky}#1"),
        ("Egretta garzetta", f"{still}#0"),
    ]
    assert taught.crops[0].path.read_bytes() == second
    assert set(taught.skipped) == {surge}
    assert "abnormal_count" in taught.skipped[surge]


def _bird(box: tuple[int, int, int, int]) -> Detection:
    return Detection(*box, score=0.8, class_id=14, label="bird", category=Category.BIRD)


def _node_event(
    session: Session,
    evidence: Path,
    tmp_path: Path,
    image: Path,
    box: tuple[int, int, int, int],
    detected: tuple[int, int, int, int] | None = None,
    named: str | None = None,
) -> str:
    """A confirmed motionless bird at pixel `box` of `image`, its evidence saved by the node's
    own evidence store: the frame, and one crop per detection of the frame (the bird itself, or
    `detected` when the detector missed the bird and the rule made its box up from the track)."""
    pixels = load_image(image)
    height, width = pixels.shape[:2]
    node_dir = tmp_path / f"node-{image.stem}-{detected}"
    saved = EvidenceStore(node_dir).save(
        image=pixels,
        detections=[_bird(detected or box)],
        camera="cam1",
        day="2026-12-01",
        stem="IMG_0001_ab12cd34",
    )
    x, y, w, h = _bird(box).normalised(width, height)
    bird: dict[str, Any] = {"x": x, "y": y, "w": w, "h": h, "category": "bird", "label": "bird"}
    return store_event(
        session,
        evidence,
        crops=[p.read_bytes() for p in saved.crops],
        frame=saved.frame.read_bytes(),
        box_list=[{**bird, "confidence": 0.8}],
        species=None if named else "Egretta garzetta",
        named=named,
        box_index=0 if named else None,
        rule="motionless_bird",
    )


@pytest.mark.parametrize(
    ("image", "bird", "other"),
    [
        # 2048 x 1536: the node stores the frame scaled to 1920 px
        ("ct_ena24_7951.jpg", (492, 717, 791, 996), (1400, 200, 1900, 500)),
        # 512 x 384: stored at full size; the other detection has nearly the bird's aspect
        ("bird_coral_owl.jpg", (120, 60, 300, 330), (330, 40, 470, 250)),
    ],
)
def test_a_motionless_birds_made_up_box_does_not_teach_another_detections_crop(
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    images_dir: Path,
    image: str,
    bird: tuple[int, int, int, int],
    other: tuple[int, int, int, int],
) -> None:
    """The detector missed the still bird in the frame (its box made up from the track) and
    found one other bird: one box, one crop, but the crop is the other bird's."""
    evidence = tmp_path / "evidence"
    with session_factory.begin() as session:
        made_up = _node_event(
            session, evidence, tmp_path, images_dir / image, bird, other, named="Ardea alba"
        )
        detected = _node_event(
            session, evidence, tmp_path, images_dir / image, bird, named="Ardea alba"
        )
    with session_factory() as session:
        taught = taught_crops(session=session, evidence_dir=evidence, catalogue=load_catalogue())
    assert [c.source for c in taught.crops] == [f"{detected}#0"]
    assert set(taught.skipped) == {made_up}
    assert "not box 0's" in taught.skipped[made_up]


def test_an_evidence_list_cut_at_its_most_teaches_nothing(
    session_factory: sessionmaker[Session], tmp_path: Path, images_dir: Path
) -> None:
    """A node lists at most MAX_EVIDENCE files (the frame and 7 crops): a frame with more
    detections lost crops, so 7 crops for 7 boxes does not say box i is detection i."""
    evidence = tmp_path / "evidence"
    crop = (images_dir / "bird_coral_bird.jpg").read_bytes()
    frame = (images_dir / "bird_coral_owl.jpg").read_bytes()
    small = [{**BIRD_BOX, "x": 0.1 * i, "w": 0.08, "confidence": 0.8} for i in range(8)]
    with session_factory.begin() as session:
        cut, whole = (
            store_event(
                session,
                evidence,
                crops=[crop] * n,
                box_list=small[:n],
                species="Egretta garzetta",
                frame=frame,
            )
            for n in (MAX_EVIDENCE - 1, MAX_EVIDENCE - 2)
        )
    with session_factory() as session:
        taught = taught_crops(session=session, evidence_dir=evidence, catalogue=load_catalogue())
    assert [c.source for c in taught.crops] == [f"{whole}#0"]
    assert "crops may be missing" in taught.skipped[cut]


def test_a_track_rules_crop_without_its_frame_is_not_taught(
    session_factory: sessionmaker[Session], tmp_path: Path, images_dir: Path
) -> None:
    evidence = tmp_path / "evidence"
    crop = (images_dir / "bird_coral_bird.jpg").read_bytes()
    with session_factory.begin() as session:
        alone = store_event(
            session, evidence, crops=[crop], species="Egretta garzetta", rule="motionless_bird"
        )
    with session_factory() as session:
        taught = taught_crops(session=session, evidence_dir=evidence, catalogue=load_catalogue())
    assert taught.crops == [] and "no frame to check" in taught.skipped[alone]


def test_crop_fits() -> None:
    box = {"x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5}
    # 0.15 of the box's size on each side: 0.65 of a 400 x 300 frame stored at full size
    assert crop_fits(box, (260, 195), (400, 300))
    assert crop_fits(box, (262, 196), (400, 300)), "the node's cut rounds outward"
    assert not crop_fits(box, (240, 195), (400, 300))
    # stored scaled down (4000 x 3000 -> 1920 x 1440): the aspect tells, and the size is full
    assert crop_fits(box, (2600, 1950), (1920, 1440))
    assert not crop_fits(box, (2600, 1700), (1920, 1440))
    assert not crop_fits(box, (260, 195), (1920, 1440)), "smaller than the frame stored"
    # clipped at the frame's edge: 0 .. 0.575
    edge = {"x": 0.0, "y": 0.0, "w": 0.5, "h": 0.5}
    assert crop_fits(edge, (230, 173), (400, 300))
    assert not crop_fits({"x": 0.1}, (10, 10), (400, 300))
