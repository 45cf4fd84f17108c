"""iNaturalist bird classifier (MobileNetV2, 964 species + background) on onnxruntime."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.classify import (
    TOP_K,
    Classification,
    Classifier,
    ClassifierSettings,
    SpeciesCandidate,
    normalise,
    register,
    roll_up,
)
from edge.detect.runtime import session_options
from models.species import Catalogue

logger = logging.getLogger(__name__)

INPUT_SIZE = 224
BACKGROUND_LABEL = "background"
# The TFLite original is uint8-quantised: probability = value / 256 (one step is ~0.004).
OUTPUT_SCALE = 1.0 / 256.0
_LABEL_RE = re.compile(r"^(?P<sci>.+?) \((?P<en>.*)\)$")
# The penultimate layer: the pooled 1280-d MobileNetV2 features as the Logits MatMul reads them
# (dequantised). Tensor names belong to one conversion, so they are keyed by the model file's
# sha256 (models/manifest.yaml); another conversion has no embedding until named here.
ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT
EMBEDDING_TENSORS: dict[str, tuple[str, tuple[int, ...]]] = {
    "9b49b65b3e765b59a8a4855c7aa95ba5e5d38269600c58b78e7158dc4d63d7c8": (
        "Reshape__93_DequantizeLinear__945:0",
        (1, 1280),
    ),
}


@dataclass(frozen=True)
class Label:
    """One class of the model: scientific and English names as written in the label file."""

    scientific_name: str
    english_name: str


def parse_label(line: str) -> Label:
    """Parse `Scientific name (English name)`; a leading class index is tolerated."""
    text = line.strip()
    head, _, rest = text.partition(" ")
    if head.isdigit() and rest:
        text = rest.strip()
    match = _LABEL_RE.match(text)
    if match is None:
        return Label(text, text)
    return Label(match["sci"].strip(), match["en"].strip())


def preprocess(crop_bgr: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """BGR crop -> [1, 224, 224, 3] uint8 RGB, plain resize (aspect ratio not kept)."""
    if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3 or crop_bgr.size == 0:
        raise ValueError(f"expected an HxWx3 BGR crop, got shape {crop_bgr.shape}")
    if crop_bgr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 crop, got {crop_bgr.dtype}")
    resized = cv2.resize(crop_bgr, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb[np.newaxis], dtype=np.uint8)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def with_output(model: bytes, tensor: str, shape: Sequence[int]) -> bytes:
    """The ONNX model with `tensor`, an intermediate float tensor of this shape, added to the
    graph's outputs.

    Done on the serialised bytes, without the `onnx` package (33 MB installed with protobuf,
    for one output on a node): a protobuf parser merges a repeated embedded-message field
    (ModelProto.graph = 7) into the first one and appends repeated fields (GraphProto.output =
    12), so appending `graph { output { name, type { tensor_type { elem_type: FLOAT, shape } } }
    }` adds one output and changes nothing else (protobuf.dev, encoding, "Last One Wins"); the
    tests check the result with onnx.checker. The same input always gives the same bytes, so
    the result's sha256 identifies the embedding function.
    """
    dims = b"".join(_field(1, _varint(1 << 3 | 0) + _varint(d)) for d in shape)  # dim_value
    tensor_type = _varint(1 << 3 | 0) + _varint(ONNX_FLOAT) + _field(2, dims)  # elem_type, shape
    float_tensor = _field(1, tensor_type)  # TypeProto.tensor_type
    value_info = _field(1, tensor.encode()) + _field(2, float_tensor)  # ValueInfoProto name, type
    return model + _field(7, _field(12, value_info))


@register("inat_bird")
class InatBirdClassifier(Classifier):
    """The Coral iNat bird MobileNetV2 (converted to ONNX), restricted to the catalogue or not."""

    decoders = frozenset({"inat_classifier"})

    def __init__(
        self,
        weights: Path,
        labels: Sequence[str],
        settings: ClassifierSettings,
        catalogue: Catalogue,
    ) -> None:
        super().__init__(weights, labels, settings, catalogue)
        options = session_options(settings.threads)
        model = weights.read_bytes()
        # The embedding is an extra output of the same run: no second inference per crop.
        layer = EMBEDDING_TENSORS.get(hashlib.sha256(model).hexdigest())
        self._embedding = layer[0] if layer else None
        if layer is not None:
            model = with_output(model, *layer)
        else:
            logger.warning("%s: no known embedding layer; the gallery is unavailable", weights)
        # Identifies the embedding function: the derived model (weights + the output added).
        self.embedder_sha256 = hashlib.sha256(model).hexdigest() if self._embedding else None
        self._session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        parsed = [parse_label(line) for line in self.labels]
        n_out = self._session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(parsed):
            raise ValueError(f"{weights.name} has {n_out} outputs but {len(parsed)} labels")
        # Every kept class index, with the candidate it stands for (catalogue species when known).
        self._kept: list[tuple[int, SpeciesCandidate]] = []
        for index, label in enumerate(parsed):
            if label.scientific_name == BACKGROUND_LABEL:
                continue
            sp = catalogue.get(label.scientific_name)
            if sp is not None:
                cand = SpeciesCandidate(sp.scientific_name, sp.chinese_name, sp.english_name, 0.0)
            elif settings.restrict_to_catalogue:
                continue
            else:
                name = label.english_name or label.scientific_name
                cand = SpeciesCandidate(label.scientific_name, name, label.english_name, 0.0)
            self._kept.append((index, cand))
        if not self._kept:
            raise ValueError("no class of the classifier is in the species catalogue")
        self._kept_index = np.array([i for i, _ in self._kept], dtype=np.int64)
        logger.info(
            "iNat classifier keeps %d of %d classes (%s)",
            len(self._kept),
            len(parsed),
            "restricted to catalogue" if settings.restrict_to_catalogue else "unrestricted",
        )

    def probabilities(self, crop_bgr: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Raw per-class probabilities (all 965 outputs, background included)."""
        return self._run(crop_bgr)[0]

    def _run(
        self, crop_bgr: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32] | None]:
        """Probabilities and, when the layer is known, the L2-normalised embedding."""
        names = [self._output] + ([self._embedding] if self._embedding else [])
        outputs = self._session.run(names, {self._input: preprocess(crop_bgr)})
        raw = np.asarray(outputs[0]).reshape(-1)
        probs = raw.astype(np.float64) * (OUTPUT_SCALE if raw.dtype == np.uint8 else 1.0)
        if len(outputs) < 2:
            return probs, None
        return probs, normalise(np.asarray(outputs[1], dtype=np.float32).reshape(-1))

    def classify(self, crop_bgr: npt.NDArray[Any]) -> Classification:
        """Top-3 species, the accepted species (or genus/family roll-up) and uncertainty."""
        return self.classify_embedded(crop_bgr)[0]

    def classify_embedded(
        self, crop_bgr: npt.NDArray[Any]
    ) -> tuple[Classification, npt.NDArray[np.float32] | None]:
        """The classification and the crop's embedding from one inference."""
        probs, embedding = self._run(crop_bgr)
        return self.decide(probs[self._kept_index]), embedding

    def decide(self, kept_probs: npt.NDArray[np.float64]) -> Classification:
        """Turn probabilities of the kept classes into a Classification (renormalised)."""
        merged: dict[str, float] = {}
        cands: dict[str, SpeciesCandidate] = {}
        for (_, cand), p in zip(self._kept, kept_probs.tolist(), strict=True):
            # Several labels may mean one catalogue species (synonyms, subspecies): add them up.
            merged[cand.scientific_name] = merged.get(cand.scientific_name, 0.0) + p
            cands.setdefault(cand.scientific_name, cand)
        mass = float(sum(merged.values()))
        kept_mass = min(mass, 1.0)
        # Unrestricted, the raw value/256 probabilities are reported (the quantised outputs sum
        # to a little less than 1). Restricted, they are renormalised over the catalogue, but only
        # when a meaningful share is left: scaling up a few 1/256 steps would turn noise into
        # certainty. Below it the raw probabilities are reported and the result is uncertain.
        usable = mass > 0.0 and kept_mass >= self.settings.min_kept_mass
        renormalise = usable and self.settings.restrict_to_catalogue
        scale = 1.0 / mass if renormalise else 1.0
        distribution = sorted(
            (
                SpeciesCandidate(
                    c.scientific_name, c.chinese_name, c.english_name, merged[name] * scale
                )
                for name, c in cands.items()
                if merged[name] > 0.0
            ),
            key=lambda c: (-c.probability, c.scientific_name),
        )
        top = distribution[:TOP_K]
        model = self.settings.model
        if not usable:
            return Classification(top, None, True, model, kept_mass)
        best = roll_up(
            distribution,
            self.catalogue,
            self.settings.min_probability,
            self.settings.rollup_probability,
        )
        return Classification(top, best, best is None, model, kept_mass)
