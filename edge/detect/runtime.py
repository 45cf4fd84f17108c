"""Shared onnxruntime plumbing for the ONNX detector back-ends."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.detect import DetectionResult, Detector, DetectorSettings
from edge.detect.categories import coco_category
from edge.detect.postprocess import (
    FloatArray,
    ImageArray,
    Letterbox,
    check_image,
    class_thresholds,
    drop_cut_boxes,
    select,
    tile_windows,
    to_detections,
)

logger = logging.getLogger(__name__)

# onnxruntime severity 3 = errors only: the NanoDet export warns once per weight otherwise.
ORT_LOG_SEVERITY = 3


def make_session(weights: Path, threads: int) -> ort.InferenceSession:
    """A CPU onnxruntime session with `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = ORT_LOG_SEVERITY
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(weights), sess_options=options, providers=["CPUExecutionProvider"]
    )


class OnnxDetector(Detector):
    """A COCO detector run by onnxruntime: subclasses supply pre-processing and decoding."""

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
            len(self.labels), coco_category, settings.score_threshold, settings.category_thresholds
        )

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

    def detect(self, image_bgr: npt.NDArray[Any]) -> DetectionResult:
        """Detect objects in one HxWx3 uint8 BGR image; ValueError for an unusable array."""
        height, width = check_image(image_bgr)
        start = time.perf_counter()
        boxes, class_scores, inference_ms = self._run(image_bgr)
        if self.settings.tiling:
            all_boxes, all_scores = [boxes], [class_scores]
            for win in tile_windows(width, height):
                tile = np.ascontiguousarray(image_bgr[win.y1 : win.y2, win.x1 : win.x2])
                t_boxes, t_scores, t_ms = self._run(tile)
                t_boxes = t_boxes + np.array([win.x1, win.y1, win.x1, win.y1], np.float32)
                whole = drop_cut_boxes(t_boxes, win, width, height)
                all_boxes.append(t_boxes[whole])
                all_scores.append(t_scores[whole])
                inference_ms += t_ms
            boxes, class_scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        kept, scores, class_ids = select(
            boxes, class_scores, self.thresholds, self.settings.nms_iou
        )
        detections = to_detections(kept, scores, class_ids, self.labels, coco_category)
        total_ms = (time.perf_counter() - start) * 1000.0
        return DetectionResult(
            detections=detections,
            width=width,
            height=height,
            model=self.settings.model,
            inference_ms=inference_ms,
            total_ms=total_ms,
        )
