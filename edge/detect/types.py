"""What a detector returns: plain data, importable without numpy or a model runtime."""

from __future__ import annotations

from dataclasses import dataclass

from broker.payloads import Category


@dataclass(frozen=True)
class Detection:
    """One detected object, box corners in pixels of the original image."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    class_id: int
    label: str
    category: Category

    def normalised(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Box as (x, y, w, h) relative to the image size, top-left origin, clipped to 0..1."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        x1 = min(max(self.x1 / width, 0.0), 1.0)
        y1 = min(max(self.y1 / height, 0.0), 1.0)
        x2 = min(max(self.x2 / width, 0.0), 1.0)
        y2 = min(max(self.y2 / height, 0.0), 1.0)
        return x1, y1, max(x2 - x1, 0.0), max(y2 - y1, 0.0)


@dataclass(frozen=True)
class DetectionResult:
    """Everything one detector call found in one image."""

    detections: list[Detection]
    width: int
    height: int
    model: str
    inference_ms: float
    total_ms: float = 0.0  # pre-processing + inference + decoding
