"""The iNat bird classifier on real crops, plus the pure crop, roll-up and smoothing helpers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.classify import (
    Classification,
    Classifier,
    ClassifierSettings,
    Rank,
    SpeciesCandidate,
    available,
    create,
    crop_box,
    roll_up,
    smooth,
)
from edge.classify.plugins.inat import parse_label, preprocess
from edge.detect import DetectorSettings
from edge.detect import create as create_detector
from models.species import Catalogue, load_catalogue


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """The packaged species catalogue."""
    return load_catalogue()


@pytest.fixture(scope="module")
def restricted(models_dir: Path, catalogue: Catalogue) -> Classifier:
    """The default classifier: restricted to the catalogue."""
    return create(ClassifierSettings(), models_dir, catalogue)


@pytest.fixture(scope="module")
def unrestricted(models_dir: Path, catalogue: Catalogue) -> Classifier:
    """All 964 iNat species."""
    return create(ClassifierSettings(restrict_to_catalogue=False), models_dir, catalogue)


def _image(images_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(images_dir / name))
    assert image is not None, name
    return image


@pytest.fixture(scope="module")
def bird_crop(images_dir: Path, models_dir: Path) -> np.ndarray:
    """The bird in bird_coral_bird.jpg, boxed by the default detector and padded."""
    image = _image(images_dir, "bird_coral_bird.jpg")
    result = create_detector(DetectorSettings(), models_dir).detect(image)
    birds = [d for d in result.detections if d.label == "bird"]
    assert birds, "the detector should find the bird"
    box = max(birds, key=lambda d: d.score)
    return crop_box(image, (box.x1, box.y1, box.x2, box.y2), ClassifierSettings().crop_margin)


def _well_formed(result: Classification, model: str) -> None:
    assert result.model == model
    assert len(result.top) <= 3
    probs = [c.probability for c in result.top]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert all(c.rank == "species" for c in result.top)
    assert 0.0 <= result.kept_mass <= 1.0
    assert result.uncertain == (result.best is None)


def test_registry_and_settings() -> None:
    assert "inat_bird" in available()
    with pytest.raises(ValidationError):
        ClassifierSettings(backend="nope")
    with pytest.raises(ValidationError):
        ClassifierSettings(model="yolox_nano_416_coco")  # a detector, not a classifier
    with pytest.raises(ValidationError):
        ClassifierSettings.model_validate({"min_probabilty": 0.4})  # typo must fail


def test_unrestricted_bird_crop(unrestricted: Classifier, bird_crop: np.ndarray) -> None:
    result = unrestricted.classify(bird_crop)
    _well_formed(result, "inat_bird_mobilenetv2_224")
    assert len(result.top) == 3
    assert result.top[0].probability > 0.5  # a confident chickadee on this clear photo
    assert result.top[0].scientific_name.startswith("Poecile")


def test_restriction_changes_candidates_to_catalogue(
    restricted: Classifier,
    unrestricted: Classifier,
    bird_crop: np.ndarray,
    catalogue: Catalogue,
) -> None:
    free = unrestricted.classify(bird_crop)
    kept = restricted.classify(bird_crop)
    _well_formed(kept, "inat_bird_mobilenetv2_224")
    assert all(c.scientific_name in catalogue for c in kept.top)
    assert free.top[0].scientific_name not in catalogue
    assert {c.scientific_name for c in kept.top}.isdisjoint(c.scientific_name for c in free.top)
    # A North American chickadee is no Zhejiang species: almost no mass is left, so uncertain.
    assert kept.kept_mass < restricted.settings.min_kept_mass
    assert kept.uncertain


def test_restricted_heron_frame_names_in_chinese(
    restricted: Classifier, images_dir: Path, catalogue: Catalogue
) -> None:
    result = restricted.classify(_image(images_dir, "ct_md_nacti_heron_flight.jpg"))
    _well_formed(result, "inat_bird_mobilenetv2_224")
    assert len(result.top) == 3
    for cand in result.top:
        species = catalogue.get(cand.scientific_name)
        assert species is not None
        assert cand.chinese_name == species.chinese_name
    assert sum(c.probability for c in result.top) <= 1.0 + 1e-9
    assert result.best is not None and result.best.chinese_name.startswith("鹭科")


@pytest.mark.parametrize("shape", [(200, 200, 3), (40, 300, 3)])
def test_grey_crop_is_uncertain_or_low(
    restricted: Classifier, unrestricted: Classifier, shape: tuple[int, int, int]
) -> None:
    grey = np.full(shape, 128, dtype=np.uint8)
    for classifier in (restricted, unrestricted):
        result = classifier.classify(grey)
        _well_formed(result, "inat_bird_mobilenetv2_224")
        assert result.uncertain or result.top[0].probability < 0.3


def test_unusable_crops_raise(restricted: Classifier) -> None:
    with pytest.raises(ValueError):
        restricted.classify(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError):
        restricted.classify(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        restricted.classify(np.zeros((0, 10, 3), dtype=np.uint8))


def test_preprocess_is_plain_rgb_resize() -> None:
    crop = np.zeros((10, 30, 3), dtype=np.uint8)
    crop[..., 0] = 255  # blue in BGR
    tensor = preprocess(crop)
    assert tensor.shape == (1, 224, 224, 3) and tensor.dtype == np.uint8
    assert (tensor[0, :, :, 2] == 255).all() and (tensor[0, :, :, 0] == 0).all()


def test_parse_label() -> None:
    assert parse_label("Ardea alba (Great Egret)").scientific_name == "Ardea alba"
    nested = parse_label("Circus cyaneus hudsonius (Northern Harrier (American))")
    assert nested.scientific_name == "Circus cyaneus hudsonius"
    assert nested.english_name == "Northern Harrier (American)"
    assert parse_label("12  Pica pica (Eurasian Magpie)").scientific_name == "Pica pica"
    assert parse_label("background").scientific_name == "background"


def test_crop_box_pads_clips_and_never_empties() -> None:
    image = np.arange(100 * 200 * 3, dtype=np.uint8).reshape(100, 200, 3)
    assert crop_box(image, (50, 20, 150, 80), 0.0).shape == (60, 100, 3)
    assert crop_box(image, (50, 20, 150, 80), 0.1).shape == (72, 120, 3)
    assert crop_box(image, (-50, -50, 500, 500), 0.5).shape == (100, 200, 3)
    assert crop_box(image, (80, 30, 80, 30), 0.2).shape[:2] == (1, 1)
    assert crop_box(image, (400, 300, 500, 400), 0.0).size > 0  # wholly outside: clipped
    assert crop_box(image, (150, 80, 50, 20), 0.0).shape == (60, 100, 3)  # swapped corners
    with pytest.raises(ValueError):
        crop_box(image, (0, 0, float("nan"), 10), 0.1)


def _cand(name: str, p: float, rank: Rank = "species") -> SpeciesCandidate:
    return SpeciesCandidate(name, name, name, p, rank)


def test_roll_up_to_genus(catalogue: Catalogue) -> None:
    dist = [
        _cand("Egretta garzetta", 0.3),
        _cand("Egretta eulophotes", 0.3),
        _cand("Ardea alba", 0.2),
        _cand("Anas crecca", 0.2),
    ]
    best = roll_up(dist, catalogue, min_probability=0.5, rollup_probability=0.5)
    assert best is not None
    assert (best.rank, best.scientific_name) == ("genus", "Egretta")
    assert best.probability == pytest.approx(0.6)
    assert best.chinese_name == "白鹭属（未定种）"


def test_roll_up_to_family_then_uncertain(catalogue: Catalogue) -> None:
    dist = [
        _cand("Egretta garzetta", 0.25),
        _cand("Ardea alba", 0.2),
        _cand("Nycticorax nycticorax", 0.2),
        _cand("Anas crecca", 0.35),
    ]
    best = roll_up(dist, catalogue, min_probability=0.5, rollup_probability=0.6)
    assert best is not None
    assert (best.rank, best.scientific_name, best.chinese_name) == (
        "family",
        "Ardeidae",
        "鹭科（未定种）",
    )
    assert best.probability == pytest.approx(0.65)
    assert roll_up(dist, catalogue, min_probability=0.5, rollup_probability=0.7) is None
    species = roll_up(dist, catalogue, min_probability=0.3, rollup_probability=0.7)
    assert species is not None and species.scientific_name == "Anas crecca"


def test_roll_up_genus_without_chinese_name(catalogue: Catalogue) -> None:
    dist = [_cand("Spilopelia chinensis", 0.4), _cand("Spilopelia senegalensis", 0.3)]
    best = roll_up(dist, catalogue, min_probability=0.5, rollup_probability=0.5)
    assert best is not None and best.chinese_name == "鸠鸽科 Spilopelia sp."
    unknown = [_cand("Corvus corone", 0.3), _cand("Corvus corax", 0.3)]
    best = roll_up(unknown, catalogue, min_probability=0.5, rollup_probability=0.5)
    assert best is not None and best.chinese_name == "Corvus sp."
    assert roll_up([], catalogue, 0.5, 0.5) is None


def test_smooth_averages_and_reranks() -> None:
    a = Classification(
        [_cand("Ardea alba", 0.6), _cand("Egretta garzetta", 0.3)],
        _cand("Ardea alba", 0.6),
        False,
        "m",
    )
    b = Classification(
        [_cand("Egretta garzetta", 0.9), _cand("Ardea alba", 0.05)],
        _cand("Egretta garzetta", 0.9),
        False,
        "m",
    )
    c = Classification([_cand("Egretta garzetta", 0.2)], None, True, "m", kept_mass=0.4)
    out = smooth([a, b, c])
    assert [x.scientific_name for x in out.top] == ["Egretta garzetta", "Ardea alba"]
    assert out.top[0].probability == pytest.approx((0.3 + 0.9 + 0.2) / 3)
    assert out.top[1].probability == pytest.approx((0.6 + 0.05) / 3)
    assert out.best is not None and out.best.scientific_name == "Egretta garzetta"
    assert out.best.probability == pytest.approx(0.3)
    assert not out.uncertain
    assert out.kept_mass == pytest.approx(0.8)
    assert smooth([a]) == a
    lost = smooth([c, c])
    assert lost.uncertain and lost.best is None
    with pytest.raises(ValueError):
        smooth([])


def test_smooth_keeps_ranks_apart() -> None:
    genus = Classification([], _cand("Egretta", 0.6, "genus"), False, "m")
    species = Classification([], _cand("Egretta", 0.5, "species"), False, "m")
    out = smooth([genus, species])
    assert out.best is not None and out.best.rank == "genus"
    assert out.best.probability == pytest.approx(0.3)


def test_station_list_without_families_never_rolls_up_to_a_nameless_family(
    shared_dir: Path,
) -> None:
    """A station list in the shared five-column format has no family: no family roll-up."""
    five_columns = load_catalogue(shared_dir / "species.csv")
    dist = [
        _cand("Egretta garzetta", 0.25),
        _cand("Ardea alba", 0.2),
        _cand("Nycticorax nycticorax", 0.2),
        _cand("Anas crecca", 0.35),
    ]
    assert roll_up(dist, five_columns, min_probability=0.5, rollup_probability=0.6) is None
    # The same list with families rolls up to 鹭科 (test above): only the family was missing.
    species = roll_up(dist, five_columns, min_probability=0.3, rollup_probability=0.7)
    assert species is not None and species.scientific_name == "Anas crecca"
