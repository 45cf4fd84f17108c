"""What the staff taught, read from the database: confirmed birds' crops and their species."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from central.gallery import taught_crops
from models.species import load_catalogue
from tests.central.gallery_events import store_event


def test_confirmed_crops_carry_the_species_the_reviewer_named_or_confirmed(
    session_factory: sessionmaker[Session], tmp_path: Path, images_dir: Path
) -> None:
    evidence = tmp_path / "evidence"
    first, second = (
        (images_dir / n).read_bytes() for n in ("bird_coral_bird.jpg", "bird_coral_owl.jpg")
    )
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
    session_factory: sessionmaker[Session], tmp_path: Path, images_dir: Path
) -> None:
    """abnormal_count and high_risk_species name one species among the frame's birds (the
    surging, the best-scoring one): their first box is not known to be it. A motionless bird
    is one bird: its node species, confirmed, is taught."""
    evidence = tmp_path / "evidence"
    first, second = (
        (images_dir / n).read_bytes() for n in ("bird_coral_bird.jpg", "bird_coral_owl.jpg")
    )
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
        still = store_event(
            session, evidence, crops=[first], species="Egretta garzetta", rule="motionless_bird"
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
