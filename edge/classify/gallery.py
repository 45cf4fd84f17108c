"""The station's reference gallery: species staff taught by confirming crops, found again by
nearest neighbour on the classifier's embeddings, beside the classifier's own suggestion.

The bundle is one zip file (so a release can carry it as one file):

    gallery.json      {"format": "wildwatch-gallery", "version": 1, "embedder_model": <model id>,
                       "embedder_sha256": <sha256 of the model that computed the embeddings>,
                       "created_at": <ISO 8601>, "items": [{"label": <scientific name>,
                       "crop": "crops/0000.jpg", "source": <event id and box, or a file>}, ...]}
    embeddings.npy    float32 [len(items), D], L2-normalised, row i for items[i] (numpy .npy,
                      read without pickle)
    crops/NNNN.jpg    the confirmed crop of each item (JPEG)

A node whose embedder has the bundle's `embedder_sha256` uses the stored embeddings; any other
node recomputes them from the crops at start-up.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from edge.classify import TOP_K, Classification, Classifier, SpeciesCandidate
from models.species import Catalogue

logger = logging.getLogger(__name__)

FORMAT = "wildwatch-gallery"
FORMAT_VERSION = 1
MANIFEST = "gallery.json"
EMBEDDINGS = "embeddings.npy"
MAX_ITEMS = 20_000  # 20,000 x 1280 float32 is 100 MB: more is not a station's gallery
# Members are refused before they are inflated past these (a zip bomb, or not a gallery).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_CROP_BYTES = 8 * 1024 * 1024
MAX_EMBEDDING_BYTES = MAX_ITEMS * 4096 * 4 + 1024
# Neighbours that vote. With a handful of examples per species, 3 lets two agreeing examples
# outvote one stray; more would let a species with many examples outvote a close one.
DEFAULT_K = 3
# Cosine similarity a neighbour needs before its species is suggested, chosen by leave-one-out
# on the shared images (benchmarks/gallery.py): at 0.58 no taught image got a wrong name and
# 2 of 31 held-out-species images did; at 0.52 wrong names were 12% and 35%; from 0.64 up
# nothing was named at all (same-species crops of this embedder mostly lie at 0.45-0.65).
DEFAULT_MIN_SIMILARITY = 0.58
GALLERY_MODEL = "gallery"


class GalleryError(ValueError):
    """A gallery bundle that cannot be used (the message says which file and why)."""


class GallerySettings(BaseModel):
    """The reference gallery of confirmed crops (the `gallery:` section of the node's YAML)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="gallery bundle (.zip) built centrally from confirmed events")
    k: int = Field(default=DEFAULT_K, ge=1, le=25, description="neighbours that vote")
    min_similarity: float = Field(
        default=DEFAULT_MIN_SIMILARITY,
        gt=0.0,
        le=1.0,
        description="cosine similarity the nearest example needs for its species to be suggested",
    )


@dataclass(frozen=True)
class GalleryItem:
    """One confirmed example: its species, its crop as JPEG bytes and where it came from."""

    label: str
    crop_jpeg: bytes
    source: str = ""


@dataclass(frozen=True)
class Bundle:
    """A gallery file's contents."""

    items: tuple[GalleryItem, ...]
    embedder_model: str
    embedder_sha256: str
    embeddings: npt.NDArray[np.float32] | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def write_bundle(path: Path, bundle: Bundle) -> None:
    """Write the bundle as one zip file (atomically: a node never reads half a gallery)."""
    items = []
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, item in enumerate(bundle.items):
            name = f"crops/{i:04d}.jpg"
            zf.writestr(name, item.crop_jpeg)
            items.append({"label": item.label, "crop": name, "source": item.source})
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "embedder_model": bundle.embedder_model,
            "embedder_sha256": bundle.embedder_sha256,
            "created_at": bundle.created_at,
            "items": items,
        }
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
        if bundle.embeddings is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(bundle.embeddings, dtype=np.float32), allow_pickle=False)
            zf.writestr(EMBEDDINGS, buffer.getvalue())
    tmp.replace(path)


def _read(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """One member, refused before it is inflated when it claims more than `limit` bytes."""
    size = zf.getinfo(name).file_size
    if size > limit:
        where = zf.filename or "gallery"
        raise GalleryError(f"{where}: {name} holds {size} bytes, more than the {limit} allowed")
    return zf.read(name)


def read_bundle(path: Path) -> Bundle:
    """Read and check a gallery file; GalleryError says what is wrong with it."""
    try:
        with zipfile.ZipFile(path) as zf:
            manifest = json.loads(_read(zf, MANIFEST, MAX_MANIFEST_BYTES))
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise GalleryError(f"{path}: not a {FORMAT} file")
            if manifest.get("version") != FORMAT_VERSION:
                raise GalleryError(f"{path}: version {manifest.get('version')!r} not supported")
            rows = manifest["items"]
            if not isinstance(rows, list) or len(rows) > MAX_ITEMS:
                raise GalleryError(f"{path}: items must be a list of at most {MAX_ITEMS}")
            items = tuple(
                GalleryItem(
                    str(r["label"]),
                    _read(zf, str(r["crop"]), MAX_CROP_BYTES),
                    str(r.get("source", "")),
                )
                for r in rows
            )
            embeddings = None
            if EMBEDDINGS in zf.namelist():
                raw = _read(zf, EMBEDDINGS, MAX_EMBEDDING_BYTES)
                embeddings = np.load(io.BytesIO(raw), allow_pickle=False)
    except GalleryError:
        raise
    except (
        OSError,
        zipfile.BadZipFile,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,  # an encrypted member
        NotImplementedError,  # a compression method zipfile does not know
        zlib.error,
    ) as exc:
        raise GalleryError(f"{path}: unreadable gallery ({type(exc).__name__}: {exc})") from exc
    if embeddings is not None and (
        embeddings.ndim != 2
        or embeddings.shape[0] != len(items)
        or not np.issubdtype(embeddings.dtype, np.floating)
    ):
        raise GalleryError(
            f"{path}: embeddings {embeddings.shape} {embeddings.dtype} do not match "
            f"{len(items)} items"
        )
    return Bundle(
        items,
        str(manifest.get("embedder_model", "")),
        str(manifest.get("embedder_sha256", "")),
        None if embeddings is None else embeddings.astype(np.float32),
        str(manifest.get("created_at", "")),
    )


def decode_crop(jpeg: bytes) -> npt.NDArray[np.uint8]:
    """A JPEG (or PNG) crop as a BGR array; GalleryError when it does not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise GalleryError("a crop does not decode as an image")
    return np.asarray(image, dtype=np.uint8)


def embed(classifier: Classifier, crop_bgr: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """The crop's L2-normalised embedding; GalleryError when the classifier has none."""
    vector = classifier.classify_embedded(crop_bgr)[1]
    if vector is None:
        raise GalleryError(f"classifier {classifier.settings.model} computes no embeddings")
    return vector


@dataclass(frozen=True)
class Match:
    """The gallery's suggestion: the winning species and the similarity of its closest example."""

    label: str
    similarity: float
    votes: int


@dataclass(frozen=True)
class Gallery:
    """Labelled, L2-normalised embeddings, searched by cosine similarity."""

    labels: tuple[str, ...]
    vectors: npt.NDArray[np.float32]  # [len(labels), D]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: Sequence[int]) -> Gallery:
        """The gallery with only the items at these indices (leave-one-out, held-out classes)."""
        return Gallery(tuple(self.labels[i] for i in keep), self.vectors[list(keep)])

    def nearest(
        self,
        vector: npt.NDArray[np.float32],
        k: int = DEFAULT_K,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
    ) -> Match | None:
        """k-NN vote among the k closest examples at or above `min_similarity` (each votes with
        its similarity); None when no example is that close."""
        if not self.labels:
            return None
        sims = self.vectors @ vector.astype(np.float32)
        order = np.argsort(-sims, kind="stable")[:k]
        close = [int(i) for i in order if sims[i] >= min_similarity]
        if not close:
            return None
        scores: dict[str, float] = {}
        for i in close:
            scores[self.labels[i]] = scores.get(self.labels[i], 0.0) + float(sims[i])
        # Ties go to the species of the closest example (it comes first in `close`).
        winner = max(scores, key=lambda name: scores[name])
        mine = [i for i in close if self.labels[i] == winner]
        return Match(winner, float(sims[mine[0]]), len(mine))


def build_gallery(bundle: Bundle, classifier: Classifier) -> Gallery:
    """The searchable gallery: stored embeddings when this classifier computed them, else
    recomputed from the crops (a different or updated model)."""
    labels = tuple(item.label for item in bundle.items)
    stored = bundle.embeddings
    if stored is not None and bundle.embedder_sha256 == classifier.embedder_sha256:
        if bundle.items:  # one crop embedded here: the stored rows must have its length
            dim = embed(classifier, decode_crop(bundle.items[0].crop_jpeg)).shape[0]
            if stored.shape[1] != dim:
                raise GalleryError(f"stored embeddings have {stored.shape[1]} values, not {dim}")
        norms = np.linalg.norm(stored, axis=1, keepdims=True)
        return Gallery(labels, (stored / np.where(norms > 0, norms, 1.0)).astype(np.float32))
    logger.info(
        "gallery embedded by %s (%s), this node's embedder is %s: recomputing %d crops",
        bundle.embedder_model,
        bundle.embedder_sha256[:12],
        (classifier.embedder_sha256 or "none")[:12],
        len(labels),
    )
    vectors = [embed(classifier, decode_crop(item.crop_jpeg)) for item in bundle.items]
    dim = vectors[0].shape[0] if vectors else 0
    return Gallery(labels, np.stack(vectors) if vectors else np.zeros((0, dim), np.float32))


def load_gallery(settings: GallerySettings, classifier: Classifier) -> Gallery | None:
    """The configured gallery, or None (logged as an error) when it cannot be used: the node
    then suggests species with the classifier alone."""
    try:
        gallery = build_gallery(read_bundle(settings.path), classifier)
    except Exception as exc:  # whatever makes the gallery unusable must not stop the node
        logger.error("参考图库无法使用 gallery not used: %s", exc)
        return None
    logger.info(
        "gallery %s: %d examples of %d species",
        settings.path,
        len(gallery),
        len(set(gallery.labels)),
    )
    return gallery


def candidate(label: str, similarity: float, catalogue: Catalogue) -> SpeciesCandidate:
    """The gallery's species as a candidate (names from the catalogue when it is there)."""
    sp = catalogue.get(label)
    if sp is not None:
        return SpeciesCandidate(sp.scientific_name, sp.chinese_name, sp.english_name, similarity)
    return SpeciesCandidate(label, label, label, similarity)


def combine(
    classification: Classification, match: Match | None, catalogue: Catalogue
) -> Classification:
    """Gallery species when an example is close enough; else the classifier when it accepted a
    species (or genus/family); else unidentified (no species named, not even a weak guess)."""
    if match is not None:
        best = candidate(match.label, match.similarity, catalogue)
        others = [c for c in classification.top if c.scientific_name != best.scientific_name]
        model = f"{GALLERY_MODEL}+{classification.model}"
        return Classification([best, *others][:TOP_K], best, False, model, 1.0)
    if classification.best is not None:
        return classification
    return Classification([], None, True, classification.model, classification.kept_mass)


class GalleryClassifier(Classifier):
    """A classifier with the station's gallery beside it: one inference gives the classifier's
    suggestion and the embedding the gallery is searched with."""

    key = "gallery"
    decoders = frozenset()

    def __init__(self, base: Classifier, gallery: Gallery, settings: GallerySettings) -> None:
        super().__init__(base.weights, base.labels, base.settings, base.catalogue)
        self.base = base
        self.gallery = gallery
        self.gallery_settings = settings
        self.embedder_sha256 = base.embedder_sha256

    def classify(self, crop_bgr: npt.NDArray[Any]) -> Classification:
        """Gallery, classifier or unidentified, in that order (see `combine`)."""
        return self.classify_embedded(crop_bgr)[0]

    def classify_embedded(
        self, crop_bgr: npt.NDArray[Any]
    ) -> tuple[Classification, npt.NDArray[np.float32] | None]:
        """The combined classification and the crop's embedding."""
        classification, vector = self.base.classify_embedded(crop_bgr)
        match = None
        if vector is not None:
            match = self.gallery.nearest(
                vector, self.gallery_settings.k, self.gallery_settings.min_similarity
            )
        return combine(classification, match, self.catalogue), vector


def with_gallery(classifier: Classifier, settings: GallerySettings | None) -> Classifier:
    """The classifier with its gallery beside it, or alone when there is none or it is unusable."""
    if settings is None:
        return classifier
    gallery = load_gallery(settings, classifier)
    return classifier if gallery is None else GalleryClassifier(classifier, gallery, settings)
