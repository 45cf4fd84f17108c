"""Running-average motion detector in the spirit of Frigate's ImprovedMotionDetector."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.motion import MotionDetector, MotionSettings, Polygon, Region

log = logging.getLogger(__name__)

_DILATE_KERNEL = np.ones((3, 3), np.uint8)
_INTERPOLATION = {"nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA}


def small_size(frame_shape: tuple[int, ...], height: int) -> tuple[int, int]:
    """(width, height) of the downscaled frame: `height` rows (never upscaled), same aspect."""
    full_h, full_w = frame_shape[0], frame_shape[1]
    rows = min(height, full_h)
    cols = max(1, round(full_w * rows / full_h))
    return cols, rows


def mask_image(polygons: list[Polygon], size: tuple[int, int]) -> npt.NDArray[np.uint8] | None:
    """255 where motion counts, 0 inside the normalised polygons; None when there is no mask."""
    if not polygons:
        return None
    width, height = size
    keep = np.full((height, width), 255, np.uint8)
    scale = np.array([width, height], np.float64)
    points = [np.round(np.asarray(p, np.float64) * scale).astype(np.int32) for p in polygons]
    cv2.fillPoly(keep, points, 0)
    return keep


def scale_box(box: Sequence[int], small: tuple[int, int], full_shape: tuple[int, ...]) -> Region:
    """A box (x, y, w, h) of the downscaled frame as a Region of the full frame."""
    x, y, w, h = box
    sx = full_shape[1] / small[0]
    sy = full_shape[0] / small[1]
    return Region(
        int(x * sx),
        int(y * sy),
        min(int(np.ceil((x + w) * sx)), full_shape[1]),
        min(int(np.ceil((y + h) * sy)), full_shape[0]),
    )


class ImprovedMotionDetector(MotionDetector):
    """Grey, downscale, blur, diff against a running-average background, contours to boxes."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self._background: npt.NDArray[np.float32] | None = None
        self._small: tuple[int, int] | None = None
        self._mask: npt.NDArray[np.uint8] | None = None
        self._kept_pixels = 1
        self.recalibrations = 0
        self._kernel = (self.settings.blur_size, self.settings.blur_size)

    def reset(self) -> None:
        """Forget the background; the next frame becomes the new one."""
        self._background = None

    def _prepare(self, frame: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        """Downscale first (on the 3 channels) so the colour conversion runs on few pixels."""
        size = small_size(frame.shape, self.settings.frame_height)
        if size != self._small:
            self._small = size
            self._mask = mask_image(self.settings.mask, size)
            self._kept_pixels = (
                size[0] * size[1] if self._mask is None else int(np.count_nonzero(self._mask))
            )
            self._background = None
        interpolation = _INTERPOLATION[self.settings.interpolation]
        small = cv2.resize(frame, size, interpolation=interpolation)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        if self.settings.blur_size > 1:
            grey = cv2.GaussianBlur(grey, self._kernel, 0)
        return np.asarray(grey, np.uint8)

    def detect(self, frame_bgr: npt.NDArray[Any]) -> list[Region]:
        """Motion boxes in full-frame pixels; none on the first frame and on recalibration."""
        if frame_bgr.ndim not in (2, 3) or frame_bgr.size == 0:
            raise ValueError(f"expected an HxW or HxWx3 frame, got shape {frame_bgr.shape}")
        grey = self._prepare(frame_bgr)
        if self._background is None:
            self._background = grey.astype(np.float32)
            return []
        background = self._background
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(background))
        _, changed = cv2.threshold(diff, self.settings.threshold, 255, cv2.THRESH_BINARY)
        if self._mask is not None:
            changed = cv2.bitwise_and(changed, self._mask)
        if iterations := self.settings.dilate_iterations:
            changed = cv2.dilate(changed, _DILATE_KERNEL, iterations=iterations)
        fraction = cv2.countNonZero(changed) / max(self._kept_pixels, 1)
        if fraction > self.settings.recalibrate_fraction:
            log.info("%.0f%% of the frame changed; resetting the background", fraction * 100)
            self.recalibrations += 1
            self._background = grey.astype(np.float32)
            return []
        cv2.accumulateWeighted(grey, background, self.settings.learning_rate)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        assert self._small is not None
        return [
            scale_box(cv2.boundingRect(c), self._small, frame_bgr.shape)
            for c in contours
            if cv2.contourArea(c) >= self.settings.contour_area
        ]
