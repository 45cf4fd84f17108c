"""Night infra-red frames: a pure greyscale test and CLAHE contrast enhancement of luminance."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

ImageArray = npt.NDArray[np.uint8]

# Mean absolute difference between colour channels (0-255 scale) below which a frame counts as
# infra-red / greyscale. Measured on the shared frames: IR frames 0.16-1.9 (JPEG chroma noise),
# the least colourful daylight frame 18.9; 4.0 leaves a wide margin on both sides.
IR_CHANNEL_TOLERANCE = 4.0
# The test looks at every n-th pixel per axis: the answer does not need full resolution.
IR_SAMPLE_STEP = 8
# CLAHE clip limit and tile grid: 2.0 / 8x8 is OpenCV's usual setting; stronger clipping
# amplifies the IR sensor noise into texture the COCO models read as fur.
CLAHE_CLIP = 2.0
CLAHE_GRID = 8


def channel_spread(image_bgr: ImageArray, step: int = IR_SAMPLE_STEP) -> float:
    """Mean absolute difference between the B, G and R channels, on a subsample of pixels."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 BGR, got shape {image_bgr.shape}")
    sample = image_bgr[::step, ::step].astype(np.int16)
    if sample.size == 0:
        return 0.0
    b, g, r = sample[..., 0], sample[..., 1], sample[..., 2]
    spread = (np.abs(b - g).mean() + np.abs(g - r).mean() + np.abs(b - r).mean()) / 3.0
    return float(spread)


def is_infrared(image_bgr: ImageArray, tolerance: float = IR_CHANNEL_TOLERANCE) -> bool:
    """True when the frame is greyscale (night infra-red or IR-flash): channels nearly equal."""
    return channel_spread(image_bgr) < tolerance


def clahe_luminance(
    image_bgr: ImageArray, clip: float = CLAHE_CLIP, grid: int = CLAHE_GRID
) -> ImageArray:
    """Contrast-limited adaptive histogram equalisation of the luminance (L of Lab) only."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8 BGR, got {image_bgr.shape} {image_bgr.dtype}")
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid))
    lab = np.asarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB), dtype=np.uint8)
    lab[..., 0] = np.asarray(clahe.apply(np.ascontiguousarray(lab[..., 0])), dtype=np.uint8)
    out: ImageArray = np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2BGR), dtype=np.uint8)
    return out
