"""Wrap the YOLOX-Nano ONNX with decoding nodes so it emits a YOLOv5 or YOLOv8 output layout.

YOLOX's raw output [1, 3549, 85] holds per grid cell (x, y, w, h, objectness, 80 scores) relative
to the cell; the added nodes compute centre = (xy + grid) * stride and size = exp(wh) * stride
in input pixels, giving a genuine Ultralytics-layout model from real weights:

- ``v5``: [1, 3549, 85] = (cx, cy, w, h, objectness, 80 class scores);
- ``v8``: [1, 84, 3549] = (cx, cy, w, h, objectness x class score for 80 classes), transposed.

The input stays YOLOX's (BGR, raw 0-255, letterbox at the top-left, padding 114; recorded in
the model's metadata), unless ``input_format="rgb01"`` adds nodes taking RGB 0-1 instead.
Needs the ``onnx`` package (a development/test dependency, not a runtime one)::

    python -m models.export.yolox_to_ultralytics yolox_nano_416_coco.onnx out.onnx --layout v8
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

logger = logging.getLogger(__name__)

Layout = Literal["v5", "v8"]
InputFormat = Literal["yolox", "rgb01"]
STRIDES = (8, 16, 32)
BOX_FIELDS = 5  # x, y, w, h, objectness before the class scores
# Same clamp as edge/detect/plugins/yolox.py: exp() of a corrupt head must not overflow to inf.
WH_CLIP = 10.0
PREFIX = "ww_"  # names of every added node and tensor, so none collides with YOLOX's own
CHECK_RTOL = 1e-5
CHECK_ATOL = 1e-3
INPUT_SPECS: dict[InputFormat, dict[str, str]] = {
    "yolox": {
        "colour": "BGR",
        "normalisation": "none, raw pixel values 0-255",
        "resize": "letterbox top-left keeping aspect ratio, padding 114",
    },
    "rgb01": {
        "colour": "RGB",
        "normalisation": "x / 255, values 0-1",
        "resize": "letterbox top-left keeping aspect ratio, padding 114",
    },
}


class ConversionError(RuntimeError):
    """The source is not the expected YOLOX export, or the converted model fails its checks."""


def grid_and_strides(input_hw: tuple[int, int]) -> tuple[npt.NDArray[np.float32], ...]:
    """Cell offsets [1, N, 2] and strides [1, N, 1] in YOLOX's output order (row-major)."""
    grids: list[npt.NDArray[np.float32]] = []
    strides: list[npt.NDArray[np.float32]] = []
    for stride in STRIDES:
        rows, cols = input_hw[0] // stride, input_hw[1] // stride
        ys, xs = np.divmod(np.arange(rows * cols, dtype=np.float32), np.float32(cols))
        grids.append(np.stack((xs, ys), axis=1))
        strides.append(np.full((rows * cols, 1), stride, dtype=np.float32))
    return np.concatenate(grids)[None], np.concatenate(strides)[None]


def _const(name: str, value: npt.NDArray[np.generic]) -> onnx.TensorProto:
    return numpy_helper.from_array(value, PREFIX + name)


def _shape(value: onnx.ValueInfoProto) -> list[int]:
    dims = value.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        raise ConversionError(f"tensor {value.name} has a dynamic shape; expected a fixed one")
    return [int(d.dim_value) for d in dims]


def _rename_uses(graph: onnx.GraphProto, old: str, new: str, outputs: bool) -> None:
    for node in graph.node:
        names = node.output if outputs else node.input
        for i, name in enumerate(names):
            if name == old:
                names[i] = new


def _decode_nodes(
    raw: str, out: str, layout: Layout, num_classes: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    def sl(name: str) -> onnx.NodeProto:
        return helper.make_node(
            "Slice",
            [raw, PREFIX + f"{name}_start", PREFIX + f"{name}_end", PREFIX + "axis2"],
            [PREFIX + name],
            name=PREFIX + f"slice_{name}",
        )

    fields = {"xy": (0, 2), "wh": (2, 4), "obj": (4, 5), "cls": (5, BOX_FIELDS + num_classes)}
    consts = [_const("axis2", np.array([2], np.int64))]
    nodes: list[onnx.NodeProto] = []
    for name, (start, end) in fields.items():
        consts.append(_const(f"{name}_start", np.array([start], np.int64)))
        consts.append(_const(f"{name}_end", np.array([end], np.int64)))
        nodes.append(sl(name))
    consts += [
        _const("wh_min", np.array(-WH_CLIP, np.float32)),
        _const("wh_max", np.array(WH_CLIP, np.float32)),
    ]
    p = PREFIX
    nodes += [
        helper.make_node("Add", [p + "xy", p + "grid"], [p + "xy_cell"], name=p + "add_grid"),
        helper.make_node("Mul", [p + "xy_cell", p + "stride"], [p + "cxy"], name=p + "mul_xy"),
        helper.make_node(
            "Clip", [p + "wh", p + "wh_min", p + "wh_max"], [p + "wh_c"], name=p + "clip"
        ),
        helper.make_node("Exp", [p + "wh_c"], [p + "wh_e"], name=p + "exp_wh"),
        helper.make_node("Mul", [p + "wh_e", p + "stride"], [p + "wh_px"], name=p + "mul_wh"),
    ]
    if layout == "v5":
        parts = [p + "cxy", p + "wh_px", p + "obj", p + "cls"]
        nodes.append(helper.make_node("Concat", parts, [out], axis=2, name=p + "concat"))
    else:
        parts = [p + "cxy", p + "wh_px", p + "scores"]
        nodes += [
            helper.make_node("Mul", [p + "obj", p + "cls"], [p + "scores"], name=p + "mul_obj"),
            helper.make_node("Concat", parts, [p + "nk"], axis=2, name=p + "concat"),
            helper.make_node("Transpose", [p + "nk"], [out], perm=[0, 2, 1], name=p + "transpose"),
        ]
    return nodes, consts


def _rgb01_nodes(
    new_input: str, bgr255: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    p = PREFIX
    consts = [_const("255", np.array(255.0, np.float32)), _const("rgb2bgr", np.array([2, 1, 0]))]
    nodes = [
        helper.make_node("Mul", [new_input, p + "255"], [p + "x255"], name=p + "scale"),
        helper.make_node("Gather", [p + "x255", p + "rgb2bgr"], [bgr255], axis=1, name=p + "bgr"),
    ]
    return nodes, consts


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(
    src: Path, dst: Path, layout: Literal["v5", "v8"], *, input_format: InputFormat = "yolox"
) -> None:
    """Write `src` (YOLOX-Nano ONNX) to `dst` with an Ultralytics `layout` output, then check it."""
    if layout not in ("v5", "v8"):
        raise ValueError(f"layout must be 'v5' or 'v8', got {layout!r}")
    model = onnx.load(str(src))
    graph = model.graph
    initialisers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ConversionError(f"{src.name}: expected one input and one output (a YOLOX export)")
    in_shape, out_shape = _shape(inputs[0]), _shape(graph.output[0])
    if len(in_shape) != 4 or in_shape[:2] != [1, 3]:
        raise ConversionError(f"{src.name}: expected a [1, 3, H, W] input, got {in_shape}")
    input_hw = (in_shape[2], in_shape[3])
    grid, stride = grid_and_strides(input_hw)
    cells = grid.shape[1]
    if len(out_shape) != 3 or out_shape[:2] != [1, cells] or out_shape[2] <= BOX_FIELDS:
        raise ConversionError(
            f"{src.name}: expected a [1, {cells}, 5+C] YOLOX output for {input_hw}, got {out_shape}"
        )
    num_classes = out_shape[2] - BOX_FIELDS

    raw, out_name = PREFIX + "yolox_raw", "output0"  # Ultralytics names its output output0
    old_out = graph.output[0].name
    _rename_uses(graph, old_out, raw, outputs=True)
    _rename_uses(graph, old_out, raw, outputs=False)
    nodes, consts = _decode_nodes(raw, out_name, layout, num_classes)
    consts += [_const("grid", grid), _const("stride", stride)]
    if input_format == "rgb01":
        old_in = inputs[0].name
        bgr255 = PREFIX + "images_bgr255"
        _rename_uses(graph, old_in, bgr255, outputs=False)
        pre_nodes, pre_consts = _rgb01_nodes(old_in, bgr255)
        graph.node.insert(0, pre_nodes[1])
        graph.node.insert(0, pre_nodes[0])
        consts += pre_consts
    graph.node.extend(nodes)
    graph.initializer.extend(consts)
    out_dims = (
        [1, cells, BOX_FIELDS + num_classes] if layout == "v5" else [1, 4 + num_classes, cells]
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims))

    spec = INPUT_SPECS[input_format]
    layout_doc = (
        "[1, N, 5+C]: cx, cy, w, h (input pixels), objectness, class scores"
        if layout == "v5"
        else "[1, 4+C, N]: cx, cy, w, h (input pixels), class scores (objectness x class)"
    )
    props = {
        "wildwatch.derived_from": f"{src.name} sha256 {_sha256(src)}",
        "wildwatch.converter": "models.export.yolox_to_ultralytics",
        "wildwatch.layout": f"YOLO{layout} {layout_doc}",
        "wildwatch.input.name": inputs[0].name,
        "wildwatch.input.shape": str(in_shape),
        "wildwatch.input.colour": spec["colour"],
        "wildwatch.input.normalisation": spec["normalisation"],
        "wildwatch.input.resize": spec["resize"],
        "stride": str(max(STRIDES)),
        "imgsz": str(list(input_hw)),
    }
    helper.set_model_props(model, props)
    model.doc_string = (
        f"YOLOX-Nano with decoding nodes giving the YOLO{layout} output layout {layout_doc}. "
        f"Input: {spec['colour']}, {spec['normalisation']}, {spec['resize']}."
    )
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"converted model fails onnx.checker: {exc}") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    check(src, dst, layout, input_format=input_format)
    logger.info("wrote %s (%s layout, %s input)", dst, layout, input_format)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check(src: Path, dst: Path, layout: Layout, *, input_format: InputFormat = "yolox") -> None:
    """Run both models in onnxruntime on one input; ConversionError unless `dst` decodes `src`."""
    original, converted = _session(src), _session(dst)
    shape = original.get_inputs()[0].shape
    rng = np.random.default_rng(0)
    bgr255 = rng.integers(0, 256, size=shape).astype(np.float32)
    (raw,) = original.run(None, {original.get_inputs()[0].name: bgr255})
    fed = bgr255[:, ::-1] / np.float32(255.0) if input_format == "rgb01" else bgr255
    (got,) = converted.run(None, {converted.get_inputs()[0].name: np.ascontiguousarray(fed)})
    grid, stride = grid_and_strides((int(shape[2]), int(shape[3])))
    pred = np.asarray(raw, dtype=np.float32)
    xy = (pred[..., 0:2] + grid) * stride
    wh = np.exp(np.clip(pred[..., 2:4], -WH_CLIP, WH_CLIP)) * stride
    obj, cls = pred[..., 4:5], pred[..., BOX_FIELDS:]
    if layout == "v5":
        want = np.concatenate((xy, wh, obj, cls), axis=2)
    else:
        want = np.concatenate((xy, wh, obj * cls), axis=2).transpose(0, 2, 1)
    got = np.asarray(got, dtype=np.float32)
    if got.shape != want.shape:
        raise ConversionError(f"converted output has shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, rtol=CHECK_RTOL, atol=CHECK_ATOL):
        worst = float(np.max(np.abs(got - want)))
        raise ConversionError(f"converted output differs from the numpy decode (max {worst})")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: SRC DST --layout v5|v8 [--input yolox|rgb01]."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("src", type=Path, help="YOLOX ONNX, e.g. yolox_nano_416_coco.onnx")
    parser.add_argument("dst", type=Path, help="where to write the converted model")
    parser.add_argument("--layout", choices=("v5", "v8"), required=True)
    parser.add_argument("--input", choices=("yolox", "rgb01"), default="yolox", dest="fmt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        convert(args.src, args.dst, args.layout, input_format=args.fmt)
    except (ConversionError, OSError, ValueError) as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
