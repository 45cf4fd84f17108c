"""Shared onnxruntime plumbing for the ONNX detector back-ends."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from broker.payloads import Category
from edge.detect import DetectionResult, Detector, DetectorSettings
from edge.detect.categories import coco_category, family
from edge.detect.enhance import clahe_luminance, is_infrared
from edge.detect.postprocess import (
    CONFIRM_SCORE,
    FloatArray,
    ImageArray,
    Letterbox,
    apply_thresholds,
    check_image,
    class_thresholds,
    drop_cut_boxes,
    merge,
    penalise_unconfirmed,
    select,
    tile_windows,
    to_detections,
)

logger = logging.getLogger(__name__)

# onnxruntime severity 3 = errors only: the NanoDet export warns once per weight otherwise.
ORT_LOG_SEVERITY = 3


def session_options(threads: int) -> ort.SessionOptions:
    """CPU session options shared by every model the node runs (detectors and classifier)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = ORT_LOG_SEVERITY
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No arena: it keeps the largest activation buffers ever needed (30 MB less peak RSS
    # on the shared images, about 5% slower; benchmarks/memory.py, README).
    options.enable_cpu_mem_arena = False
    # No spin-waiting: a cascade alternates two or three sessions (and the classifier) on a
    # node's two cores, and an idle session's threads spinning for work take CPU from the one
    # that runs. `edge scan` of 114 images: plain YOLOX-Nano 8.3 -> 7.9 s, the default cascade
    # 16.9 -> 13.4 s (benchmarks/scan_cost.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def make_session(weights: Path, threads: int) -> ort.InferenceSession:
    """A CPU onnxruntime session with `threads` intra-op threads."""
    return ort.InferenceSession(
        str(weights), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )


class OnnxDetector(Detector):
    """A detector run by onnxruntime: subclasses supply pre-processing and decoding, and the
    category of each class (COCO-80 unless they say otherwise)."""

    def __init__(self, weights: Path, labels: Sequence[str], settings: DetectorSettings) -> None:
        super().__init__(weights, labels, settings)
        self.session = make_session(weights, settings.threads)
        first = self.session.get_inputs()[0]
        self.input_name: str = first.name
        shape = first.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
            raise ValueError(f"{weights.name}: expected a fixed NCHW input, got {shape}")
        self.input_hw: tuple[int, int] = (int(shape[2]), int(shape[3]))
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.thresholds = class_thresholds(
            len(self.labels),
            self.category_of,
            settings.score_threshold,
            settings.category_thresholds,
        )
        # Candidates go down to CONFIRM_SCORE (and the animal threshold, which bird and dog
        # boxes fall back to) so a weak full-frame box can confirm a tile box; the final
        # thresholds apply after the tile-only factor.
        floor = min(CONFIRM_SCORE, settings.threshold_for(Category.ANIMAL))
        self.candidates = np.minimum(self.thresholds, np.float32(floor))

    @abc.abstractmethod
    def preprocess(self, image_bgr: ImageArray) -> tuple[FloatArray, Letterbox]:
        """The NCHW float32 input tensor and how the image was placed in it."""

    @abc.abstractmethod
    def decode(self, outputs: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """xyxy boxes in network-input pixels (N, 4) and class scores (N, classes)."""

    def _run(self, image_bgr: ImageArray) -> tuple[FloatArray, FloatArray, float]:
        """Boxes in `image_bgr` pixels, class scores, and the inference time in ms."""
        height, width = image_bgr.shape[:2]
        tensor, placement = self.preprocess(image_bgr)
        t_infer = time.perf_counter()
        raw = self.session.run(self.output_names, {self.input_name: tensor})
        inference_ms = (time.perf_counter() - t_infer) * 1000.0
        outputs = {
            name: np.asarray(value, dtype=np.float32)
            for name, value in zip(self.output_names, raw, strict=True)
        }
        boxes, class_scores = self.decode(outputs)
        if class_scores.shape[1] != len(self.thresholds):
            raise ValueError(
                f"{self.weights.name}: {class_scores.shape[1]} classes but "
                f"{len(self.thresholds)} labels"
            )
        return placement.to_original(boxes, width, height), class_scores, inference_ms

    def category_of(self, class_id: int) -> Category | None:
        """Category of a class of this model (COCO-80 order unless a back-end overrides it)."""
        return coco_category(class_id)

    def _family(self, class_id: int) -> str | None:
        category = self.category_of(class_id)
        return None if category is None else family(category)

    def frames(self, image_bgr: ImageArray) -> list[ImageArray]:
        """The frame(s) to run: the image, and/or its CLAHE copy when it is night infra-red.

        Without tiling the copy is made at the network's input scale (resized, then
        enhanced): the network sees no more pixels than that, and CLAHE on a full 3-12 MP
        camera-trap frame cost about 65 ms, more than the detector itself.
        """
        mode = self.settings.ir_enhance
        if mode == "off" or not is_infrared(image_bgr):
            return [image_bgr]
        source = image_bgr if self.settings.tiling else self._input_scale(image_bgr)
        enhanced = clahe_luminance(source)
        return [enhanced] if mode == "enhanced" else [image_bgr, enhanced]

    def _input_scale(self, image_bgr: ImageArray) -> ImageArray:
        """`image_bgr` shrunk to fit the network input as the letterbox would shrink it (linear),
        or itself if it fits."""
        h, w = image_bgr.shape[:2]
        scale = min(self.input_hw[0] / h, self.input_hw[1] / w)
        if scale >= 1.0:
            return image_bgr
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR), np.uint8)

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect objects in one HxWx3 uint8 BGR image; ValueError for an unusable array."""
        height, width = check_image(image_bgr)
        start = time.perf_counter()
        full_boxes: list[FloatArray] = []
        full_scores: list[FloatArray] = []
        tile_boxes: list[FloatArray] = []
        tile_scores: list[FloatArray] = []
        inference_ms = 0.0
        windows = tile_windows(width, height) if self.settings.tiling else []
        for frame in self.frames(image_bgr):
            boxes, class_scores, ms = self._run(frame)
            if frame.shape[:2] != (height, width):  # the enhanced copy at input scale
                boxes = boxes * np.float32(width / frame.shape[1])
                np.clip(boxes, 0.0, np.array([width, height, width, height], np.float32), boxes)
            full_boxes.append(boxes)
            full_scores.append(class_scores)
            inference_ms += ms
            if frame.shape[:2] != (height, width):
                continue  # no tiles of a reduced copy (tiling enhances at full size)
            for win in windows:
                tile = np.ascontiguousarray(frame[win.y1 : win.y2, win.x1 : win.x2])
                t_boxes, t_scores, t_ms = self._run(tile)
                t_boxes = t_boxes + np.array([win.x1, win.y1, win.x1, win.y1], np.float32)
                whole = drop_cut_boxes(t_boxes, win, width, height)
                tile_boxes.append(t_boxes[whole])
                tile_scores.append(t_scores[whole])
                inference_ms += t_ms
        nms_iou = self.settings.nms_iou
        kept, scores, class_ids = select(
            np.concatenate(full_boxes), np.concatenate(full_scores), self.candidates, nms_iou
        )
        if tile_boxes:
            t_kept, t_scores_, t_ids = select(
                np.concatenate(tile_boxes), np.concatenate(tile_scores), self.candidates, nms_iou
            )
            t_scores_ = penalise_unconfirmed(
                t_kept,
                t_scores_,
                [self._family(c) for c in t_ids.tolist()],
                kept,
                [self._family(c) for c in class_ids.tolist()],
                self.settings.tile_only_factor,
            )
            kept, scores, class_ids = merge(
                (kept, scores, class_ids), (t_kept, t_scores_, t_ids), nms_iou
            )
        detections = apply_thresholds(
            to_detections(kept, scores, class_ids, self.labels, self.category_of),
            self.settings.threshold_for,
        )
        total_ms = (time.perf_counter() - start) * 1000.0
        return DetectionResult(
            detections=detections,
            width=width,
            height=height,
            model=self.settings.model,
            inference_ms=inference_ms,
            total_ms=total_ms,
        )
