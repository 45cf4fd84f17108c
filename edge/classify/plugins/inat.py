"""iNaturalist bird classifier (MobileNetV2, 964 species + background) on onnxruntime."""

from __future__ import annotations

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
    register,
    roll_up,
)
from models.species import Catalogue

logger = logging.getLogger(__name__)

INPUT_SIZE = 224
BACKGROUND_LABEL = "background"
# The TFLite original is uint8-quantised: probability = value / 256 (one step is ~0.004).
OUTPUT_SCALE = 1.0 / 256.0
_LABEL_RE = re.compile(r"^(?P<sci>.+?) \((?P<en>.*)\)$")


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
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.threads
        options.inter_op_num_threads = 1
        # No arena: it keeps the largest activation buffers ever needed (30 MB less peak RSS
        # on the shared images, about 5% slower; benchmarks/memory.py, README).
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(
            str(weights), sess_options=options, providers=["CPUExecutionProvider"]
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
        outputs = self._session.run([self._output], {self._input: preprocess(crop_bgr)})
        raw = np.asarray(outputs[0]).reshape(-1)
        if raw.dtype == np.uint8:
            return raw.astype(np.float64) * OUTPUT_SCALE
        return raw.astype(np.float64)

    def classify(self, crop_bgr: npt.NDArray[Any]) -> Classification:
        """Top-3 species, the accepted species (or genus/family roll-up) and uncertainty."""
        probs = self.probabilities(crop_bgr)
        return self.decide(probs[self._kept_index])

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
