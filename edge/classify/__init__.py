"""Classification stage: the Classifier interface, its result types, registry and pure helpers.

Back-ends live in `edge/classify/plugins/` and register themselves with their own settings class
(the `classifier:` section is validated by the class its `backend` names); they are imported
when a back-end is first needed, so the result types load no model runtime.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    field_validator,
    model_validator,
)

from edge.registry import Registry
from models.registry import load_labels, load_manifest, model_path
from models.species import Catalogue

logger = logging.getLogger(__name__)

DEFAULT_BACKEND = "inat_bird"
DEFAULT_MODEL = "inat_bird_mobilenetv2_224"
# One thread: the classifier runs on a few crops per event, after the detector (which has two).
DEFAULT_THREADS = 1
MAX_THREADS = 8
TOP_K = 3
# Accepting a species below even odds names too many wrong species; above ~0.7 the (approximate,
# uint8) model rarely commits and almost everything rolls up to genus or family.
DEFAULT_MIN_PROBABILITY = 0.5
# A genus or family must hold at least this share before it is reported instead of a species.
DEFAULT_ROLLUP_PROBABILITY = 0.5
# Below this share of the model's output on the kept labels (catalogue species when restricted,
# always without "background"), renormalising would amplify noise: the result is uncertain.
DEFAULT_MIN_KEPT_MASS = 0.1
# Padding of the detector box on each side, as a fraction of its size: detector boxes cut wing
# tips and tails; much more padding lets the background dominate the 224x224 input.
DEFAULT_CROP_MARGIN = 0.1
MAX_CROP_MARGIN = 1.0

Rank = Literal["species", "genus", "family"]


@dataclass(frozen=True)
class SpeciesCandidate:
    """One suggestion: a species, or a genus/family when the species is not certain."""

    scientific_name: str
    chinese_name: str
    english_name: str
    probability: float
    rank: Rank = "species"


@dataclass(frozen=True)
class Classification:
    """What the classifier suggests for one crop (or, smoothed, for a burst or track)."""

    top: list[SpeciesCandidate]  # up to TOP_K species, most probable first
    best: SpeciesCandidate | None  # accepted species, or the genus/family it rolled up to
    uncertain: bool  # True when no species, genus or family reached its threshold
    model: str
    kept_mass: float = 1.0  # share of the raw output on the kept labels, before renormalising


def available() -> list[str]:
    """Keys of the registered classifier back-ends, sorted."""
    return _BACKENDS.keys()


class ClassifierSettings(BaseModel):
    """Species classifier configuration (the `classifier:` section of the node's YAML)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="classify bird crops into species")
    backend: str = Field(default=DEFAULT_BACKEND, description="registered back-end key")
    model: str = Field(default=DEFAULT_MODEL, description="model id from models/manifest.yaml")
    threads: int = Field(
        default=DEFAULT_THREADS, ge=1, le=MAX_THREADS, description="onnxruntime intra-op threads"
    )
    restrict_to_catalogue: bool = Field(
        default=True,
        description="keep only species in the station's catalogue and renormalise over them",
    )
    min_probability: float = Field(
        default=DEFAULT_MIN_PROBABILITY,
        gt=0.0,
        le=1.0,
        description="probability a species needs to be accepted; below it, roll up",
    )
    rollup_probability: float = Field(
        default=DEFAULT_ROLLUP_PROBABILITY,
        gt=0.0,
        le=1.0,
        description="summed probability a genus, then a family, needs to be reported",
    )
    min_kept_mass: float = Field(
        default=DEFAULT_MIN_KEPT_MASS,
        ge=0.0,
        le=1.0,
        description="raw output share on kept labels below which the result is uncertain",
    )
    crop_margin: float = Field(
        default=DEFAULT_CROP_MARGIN,
        ge=0.0,
        le=MAX_CROP_MARGIN,
        description="padding added to each side of the detector box, as a fraction of its size",
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in _BACKENDS:
            raise ValueError(f"unknown classifier backend {value!r}; available: {available()}")
        return value

    @model_validator(mode="after")
    def _model_matches_backend(self) -> ClassifierSettings:
        spec = load_manifest().get(self.model)
        decoders = _BACKENDS[self.backend].decoders
        if spec.task != "classification" or spec.decoder not in decoders:
            raise ValueError(
                f"model {self.model} ({spec.task}, decoder {spec.decoder!r}) cannot be used by "
                f"the {self.backend!r} classifier"
            )
        return self


class Classifier(abc.ABC):
    """A classification back-end: a BGR crop of one animal in, species suggestions out."""

    key: ClassVar[str]
    decoders: ClassVar[frozenset[str]]  # manifest `decoder` values this back-end can run
    settings_type: ClassVar[type[ClassifierSettings]] = ClassifierSettings
    # sha256 of the model that computes `classify_embedded`'s embeddings; None: no embeddings.
    embedder_sha256: str | None = None

    def __init__(
        self,
        weights: Path,
        labels: Sequence[str],
        settings: ClassifierSettings,
        catalogue: Catalogue,
    ) -> None:
        self.weights = weights
        self.labels = list(labels)
        self.settings = settings
        self.catalogue = catalogue

    @abc.abstractmethod
    def classify(self, crop_bgr: npt.NDArray[Any]) -> Classification:
        """Classify one HxWx3 uint8 BGR crop; ValueError for an unusable array."""

    def classify_embedded(
        self, crop_bgr: npt.NDArray[Any]
    ) -> tuple[Classification, npt.NDArray[np.float32] | None]:
        """The classification and the crop's L2-normalised embedding (None: not available)."""
        return self.classify(crop_bgr), None


_BACKENDS: Registry[Classifier] = Registry("classifier", "edge.classify.plugins")
register = _BACKENDS.register


def classifier_settings(
    data: Mapping[str, Any] | ClassifierSettings | None = None, /, **fields: Any
) -> ClassifierSettings:
    """Settings validated by the settings class of the back-end that `backend` names."""
    settings: ClassifierSettings = _BACKENDS.settings(data, DEFAULT_BACKEND, fields)
    return settings


# The `classifier:` field of a configuration: parsed by the named back-end's settings class.
ClassifierConfig = Annotated[
    SerializeAsAny[ClassifierSettings], _BACKENDS.validator(DEFAULT_BACKEND)
]


def create(settings: ClassifierSettings, store: Path | None, catalogue: Catalogue) -> Classifier:
    """Build the configured back-end with its installed, verified model from `store`."""
    settings = classifier_settings(settings)
    cls = _BACKENDS[settings.backend]
    weights = model_path(settings.model, store)
    labels = load_labels(settings.model, store)
    logger.info("loading %s classifier with %s (%d threads)", cls.key, weights, settings.threads)
    return cls(weights, labels, settings, catalogue)


def crop_box(
    image: npt.NDArray[Any], box_xyxy: Sequence[float], margin: float = DEFAULT_CROP_MARGIN
) -> npt.NDArray[Any]:
    """The box padded by `margin` x its size on each side, clipped to the image, never empty."""
    if image.ndim < 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"cannot crop an image of shape {image.shape}")
    if len(box_xyxy) != 4:
        raise ValueError(f"box must be (x1, y1, x2, y2), got {box_xyxy!r}")
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise ValueError(f"box has non-finite coordinates: {box_xyxy!r}")
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    pad_x, pad_y = (x2 - x1) * max(margin, 0.0), (y2 - y1) * max(margin, 0.0)
    left = min(max(int(np.floor(x1 - pad_x)), 0), width - 1)
    top = min(max(int(np.floor(y1 - pad_y)), 0), height - 1)
    right = min(max(int(np.ceil(x2 + pad_x)), left + 1), width)
    bottom = min(max(int(np.ceil(y2 + pad_y)), top + 1), height)
    return image[top:bottom, left:right]


def normalise(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The vector scaled to unit length (an all-zero vector stays zero: it matches nothing)."""
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0.0 else vector.astype(np.float32)


def genus_of(scientific_name: str) -> str:
    """Genus of a scientific name (its first word)."""
    return scientific_name.split()[0] if scientific_name.strip() else scientific_name


def roll_up(
    distribution: Sequence[SpeciesCandidate],
    catalogue: Catalogue,
    min_probability: float,
    rollup_probability: float,
) -> SpeciesCandidate | None:
    """The accepted species, else the most probable genus, else family, reaching its threshold.

    `distribution` holds species-rank candidates (ideally the whole output, not only the top
    few). Families are known only for catalogue species. None when no level qualifies.
    """
    species = [c for c in distribution if c.rank == "species"]
    if not species:
        return None
    best = max(species, key=lambda c: c.probability)
    if best.probability >= min_probability:
        return best
    genera: dict[str, float] = {}
    for cand in species:
        genus = genus_of(cand.scientific_name)
        genera[genus] = genera.get(genus, 0.0) + cand.probability
    names = catalogue.genus_names()
    genus, mass = max(genera.items(), key=lambda item: item[1])
    if mass >= rollup_probability:
        genus_zh, _, family_zh = names.get(genus, (None, "", ""))
        if genus_zh:
            zh = f"{genus_zh}（未定种）"
        elif family_zh:
            zh = f"{family_zh} {genus} sp."
        else:
            zh = f"{genus} sp."
        return SpeciesCandidate(genus, zh, f"{genus} sp.", min(mass, 1.0), "genus")
    families: dict[str, float] = {}
    for cand in species:
        sp = catalogue.get(cand.scientific_name)
        if sp is not None and sp.family:  # a station list may leave the family out
            families[sp.family] = families.get(sp.family, 0.0) + cand.probability
    if families:
        family, mass = max(families.items(), key=lambda item: item[1])
        if mass >= rollup_probability:
            zh = f"{catalogue.family_zh(family) or family}（未定种）"
            return SpeciesCandidate(family, zh, f"{family} sp.", min(mass, 1.0), "family")
    return None


def smooth(classifications: Sequence[Classification]) -> Classification:
    """Average the candidates of a burst or track (each frame weighted equally) and re-rank.

    A candidate missing from a frame counts as 0 there. `best` is the highest averaged best
    candidate (species, genus and family kept apart); uncertain when no frame had one.
    """
    if not classifications:
        raise ValueError("nothing to smooth")
    n = len(classifications)

    def average(cands: Sequence[SpeciesCandidate]) -> list[SpeciesCandidate]:
        sums: dict[tuple[str, Rank], float] = {}
        first: dict[tuple[str, Rank], SpeciesCandidate] = {}
        for cand in cands:
            key = (cand.scientific_name, cand.rank)
            sums[key] = sums.get(key, 0.0) + cand.probability
            first.setdefault(key, cand)
        out = [
            SpeciesCandidate(c.scientific_name, c.chinese_name, c.english_name, sums[k] / n, c.rank)
            for k, c in first.items()
        ]
        # Stable tie-break by name so the same inputs always give the same order.
        return sorted(out, key=lambda c: (-c.probability, c.scientific_name))

    top = average([c for cl in classifications for c in cl.top])[:TOP_K]
    bests = average([cl.best for cl in classifications if cl.best is not None])
    best = bests[0] if bests else None
    models = sorted({cl.model for cl in classifications})
    kept = sum(cl.kept_mass for cl in classifications) / n
    return Classification(top, best, best is None, ",".join(models), kept)


__all__ = [
    "Classification",
    "Classifier",
    "ClassifierConfig",
    "ClassifierSettings",
    "SpeciesCandidate",
    "available",
    "classifier_settings",
    "create",
    "crop_box",
    "genus_of",
    "normalise",
    "register",
    "roll_up",
    "smooth",
]
