"""Evaluation of a detector configuration against labels.csv (`wildwatch eval`): image level and
sequence level, as camera-trap tools count.

A sequence (burst) is the camera's own burst where labels.csv names it (`seq_id` column), else
the frames of one folder whose EXIF capture times are at most 60 s apart (MegaDetector's rule);
a frame without an EXIF time is a sequence of its own. A sequence holds an animal or a bird when
any of its frames does, in the labels and in the detector's answer.
"""

from __future__ import annotations

import csv
import itertools
import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from broker.payloads import Category
from edge.detect import Detector, DetectorSettings, available, create, detector_settings
from edge.detect.categories import ANIMAL_CATEGORIES
from edge.detect.prefetch import prefetch
from edge.ingest import MediaError, load_image
from edge.ingest.capture_time import ExifUnreadable, exif_datetime

logger = logging.getLogger(__name__)

CAMTRAP_PREFIX = "camtrap"
# Images decoded ahead of the detector: overlaps JPEG decoding with inference.
PREFETCH_DEPTH = 2
# MegaDetector's sequence rule: frames of one camera at most this far apart are one sequence.
SEQUENCE_GAP_S = 60.0
UTC_ZONE = ZoneInfo("UTC")  # EXIF times without an offset: only the gaps between frames matter

ThresholdOf = Callable[[Category], float]


@dataclass(frozen=True)
class Label:
    """One row of labels.csv: truth is None where the label is blank (unsure)."""

    file: str
    animal: bool | None
    bird: bool | None
    kind: str
    seq_id: str = ""  # the camera's own burst, when labels.csv has a seq_id column


@dataclass(frozen=True)
class Outcome:
    """What the detector said about one labelled image: the best score per category."""

    label: Label
    scores: dict[Category, float]
    inference_ms: float
    total_ms: float
    failure: str | None = None
    captured_at: datetime | None = None  # EXIF time, for sequences


@dataclass
class Counts:
    """True/false positives and false negatives of one image-level decision."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, predicted: bool) -> None:
        """Count one image."""
        if truth and predicted:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        """TP / (TP + FP); nan when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        """TP / (TP + FN); nan without positives."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


@dataclass
class EvalReport:
    """Image-level figures overall and per image kind, with timing."""

    config: str
    animal: Counts
    bird: Counts
    per_kind: dict[str, tuple[Counts, Counts]]  # kind -> (animal, bird)
    images: int
    median_inference_ms: float
    median_total_ms: float
    sequences: int = 0
    seq_animal: Counts = field(default_factory=Counts)
    seq_bird: Counts = field(default_factory=Counts)
    missed_animals: list[str] = field(default_factory=list)
    false_animals: list[str] = field(default_factory=list)
    bird_errors: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def _truth(value: str) -> bool | None:
    value = value.strip()
    if value in ("0", "1"):
        return value == "1"
    if value:
        raise ValueError(f"label must be 0, 1 or blank, got {value!r}")
    return None


def read_labels(labels_csv: Path) -> list[Label]:
    """Rows of labels.csv (file, animal, bird, kind)."""
    with labels_csv.open(encoding="utf-8", newline="") as f:
        return [
            Label(
                row["file"],
                _truth(row["animal"]),
                _truth(row["bird"]),
                row["kind"].strip(),
                (row.get("seq_id") or "").strip(),
            )
            for row in csv.DictReader(f)
        ]


def present(scores: dict[Category, float], categories: Iterable[Category], th: ThresholdOf) -> bool:
    """True when any of `categories` has a best score at or above its threshold."""
    return any(scores.get(c, 0.0) >= th(c) for c in categories)


def animal_present(scores: dict[Category, float], th: ThresholdOf) -> bool:
    """An animal, bird or dog box at or above its own threshold or the animal threshold
    (bird and dog boxes below their own threshold are kept as animals by the detector)."""
    animal = th(Category.ANIMAL)
    return any(scores.get(c, 0.0) >= min(th(c), animal) for c in ANIMAL_CATEGORIES)


def sequences(outcomes: Sequence[Outcome], gap_s: float = SEQUENCE_GAP_S) -> list[list[Outcome]]:
    """Group frames into sequences: labelled seq_id (within one folder), else EXIF times <= gap_s
    apart within one folder, else one frame each (pure)."""
    named: dict[tuple[str, str], list[Outcome]] = {}
    timed: dict[str, list[Outcome]] = {}
    out: list[list[Outcome]] = []
    for o in outcomes:
        if o.label.seq_id:
            # cameras number their bursts each on their own: a seq_id is one folder's
            named.setdefault((str(Path(o.label.file).parent), o.label.seq_id), []).append(o)
        elif o.captured_at is not None:
            timed.setdefault(str(Path(o.label.file).parent), []).append(o)
        else:
            out.append([o])
    out.extend(named.values())
    for frames in timed.values():
        frames.sort(key=lambda o: o.captured_at or datetime.min)
        run = [frames[0]]
        for prev, o in itertools.pairwise(frames):
            assert prev.captured_at is not None and o.captured_at is not None
            if (o.captured_at - prev.captured_at).total_seconds() > gap_s:
                out.append(run)
                run = []
            run.append(o)
        out.append(run)
    return out


def _any(values: Iterable[bool | None]) -> bool | None:
    """A sequence's truth: True if any frame is, None if none is and some frame is unsure."""
    seen = list(values)
    if any(v is True for v in seen):
        return True
    return None if any(v is None for v in seen) else False


def _count_sequences(rep: EvalReport, ok: Sequence[Outcome], threshold_of: ThresholdOf) -> None:
    groups = sequences(ok)
    rep.sequences = len(groups)
    for frames in groups:
        camtrap = [o for o in frames if o.label.kind.startswith(CAMTRAP_PREFIX)]
        truth = _any(o.label.animal for o in camtrap) if camtrap else None
        if truth is not None:
            rep.seq_animal.add(truth, any(animal_present(o.scores, threshold_of) for o in camtrap))
        bird = _any(o.label.bird for o in frames)
        if bird is not None:
            said = any(present(o.scores, (Category.BIRD,), threshold_of) for o in frames)
            rep.seq_bird.add(bird, said)


def report(outcomes: Sequence[Outcome], threshold_of: ThresholdOf, config: str = "") -> EvalReport:
    """Image-level figures of `outcomes` at the given per-category thresholds (pure).

    Animal: camera-trap frames (kind camtrap*) with an animal label; a frame is "animal" when
    any animal, bird or dog box passes. Bird: every image with a bird label.
    """
    animal, bird = Counts(), Counts()
    per_kind: dict[str, tuple[Counts, Counts]] = {}
    rep = EvalReport(config, animal, bird, per_kind, 0, float("nan"), float("nan"))
    ok = [o for o in outcomes if o.failure is None]
    for o in outcomes:
        if o.failure is not None:
            rep.failures[o.label.file] = o.failure
    for o in ok:
        lab = o.label
        kind_animal, kind_bird = per_kind.setdefault(lab.kind, (Counts(), Counts()))
        if lab.kind.startswith(CAMTRAP_PREFIX) and lab.animal is not None:
            said = animal_present(o.scores, threshold_of)
            animal.add(lab.animal, said)
            kind_animal.add(lab.animal, said)
            if lab.animal and not said:
                rep.missed_animals.append(lab.file)
            if said and not lab.animal:
                rep.false_animals.append(lab.file)
        if lab.bird is not None:
            said = present(o.scores, (Category.BIRD,), threshold_of)
            bird.add(lab.bird, said)
            kind_bird.add(lab.bird, said)
            if said != lab.bird:
                rep.bird_errors.append(lab.file)
    rep.images = len(ok)
    _count_sequences(rep, ok, threshold_of)
    if ok:
        rep.median_inference_ms = statistics.median(o.inference_ms for o in ok)
        rep.median_total_ms = statistics.median(o.total_ms for o in ok)
    return rep


def _exif_time(path: Path) -> datetime | None:
    try:
        return exif_datetime(path, UTC_ZONE)
    except (ExifUnreadable, OSError):
        return None


def run(
    detector: Detector, images_dir: Path, labels: Sequence[Label], depth: int = PREFETCH_DEPTH
) -> list[Outcome]:
    """Detect on every labelled image; the best score per category of each."""
    by_path = {images_dir / lab.file: lab for lab in labels}
    outcomes: list[Outcome] = []
    for path, image in prefetch(list(by_path), load_image, depth):
        lab = by_path[path]
        if isinstance(image, MediaError):
            outcomes.append(Outcome(lab, {}, 0.0, 0.0, failure=str(image)))
            continue
        result = detector.detect(image)
        scores: dict[Category, float] = {}
        for d in result.detections:
            scores[d.category] = max(scores.get(d.category, 0.0), d.score)
        outcomes.append(
            Outcome(lab, scores, result.inference_ms, result.total_ms, captured_at=_exif_time(path))
        )
    return outcomes


def describe(settings: DetectorSettings) -> str:
    """Short name of a configuration for tables."""
    name = settings.backend
    if settings.tiling:
        name += "+tiles"
        if settings.tile_only_factor < 1.0:
            name += f"(x{settings.tile_only_factor:g})"
    if settings.ir_enhance != "off":
        name += f"+ir:{settings.ir_enhance}"
    if settings.backend != "ensemble":
        return f"{name}:{settings.model[-3:]}" if settings.backend == "mdlite" else name
    # the ensemble back-end's own options
    members = "+".join(_SHORT.get(m, m) for m in settings.model_ids())
    name += f"[{members}]({getattr(settings, 'fusion', '')})"
    below = getattr(settings, "second_look_below", None)
    return name + (f" cascade<{below:g}" if below is not None else " all")


_SHORT = {
    "yolox_nano_416_coco": "yolox",
    "nanodet_m_416_coco": "nanodet",
    "mdlite_yolox_tiny_416": "mdlite416",
    "mdlite_yolox_tiny_640": "mdlite640",
}


def evaluate(
    images_dir: Path,
    labels_csv: Path,
    settings: DetectorSettings,
    store: Path | None = None,
    *,
    detector: Detector | None = None,
    files: Iterable[str] | None = None,
) -> EvalReport:
    """Run `settings` over the labelled images (or only `files`) and compute the figures."""
    labels = read_labels(labels_csv)
    if files is not None:
        wanted = set(files)
        labels = [lab for lab in labels if lab.file in wanted]
    det = detector or create(settings, store)
    outcomes = run(det, images_dir, labels)
    return report(outcomes, settings.threshold_for, describe(settings))


def _f(value: float) -> str:
    return "  -  " if value != value else f"{value:5.2f}"


def format_report(rep: EvalReport) -> str:
    """The report as a plain-text table (Chinese first, English beside it)."""
    lines = [
        f"配置 config: {rep.config}   图像 images: {rep.images}   "
        f"推理 inference {rep.median_inference_ms:.1f} ms   全程 total {rep.median_total_ms:.1f} ms"
        " (median)",
        f"{'类型 kind':24} {'n':>3} {'动物召回 animal R':>17} {'误报 false animal':>17} "
        f"{'鸟精度 bird P':>13} {'鸟召回 bird R':>13}",
    ]
    rows = sorted(rep.per_kind.items())
    rows.append(("全部 all", (rep.animal, rep.bird)))
    for kind, (a, b) in rows:
        n = max(a.tp + a.fp + a.fn + a.tn, b.tp + b.fp + b.fn + b.tn)
        lines.append(
            f"{kind:24} {n:3d} {_f(a.recall):>17} {a.fp:17d} {_f(b.precision):>13} "
            f"{_f(b.recall):>13}"
        )
    lines.append(
        f"图像级 image level: 动物 animal (camtrap) P {_f(rep.animal.precision)} "
        f"R {_f(rep.animal.recall)}   鸟 bird P {_f(rep.bird.precision)} R {_f(rep.bird.recall)}"
    )
    sa, sb = rep.seq_animal, rep.seq_bird
    lines.append(
        f"序列级 sequence level ({rep.sequences} 序列 sequences): 动物 animal (camtrap) "
        f"P {_f(sa.precision)} R {_f(sa.recall)}   鸟 bird P {_f(sb.precision)} R {_f(sb.recall)}"
    )
    if rep.missed_animals:
        lines.append("漏检 missed animals: " + ", ".join(rep.missed_animals))
    if rep.false_animals:
        lines.append("误报 false animals: " + ", ".join(rep.false_animals))
    if rep.bird_errors:
        lines.append("鸟错误 bird errors: " + ", ".join(rep.bird_errors))
    for file, why in rep.failures.items():
        lines.append(f"失败 failed: {file}: {why}")
    return "\n".join(lines)


@click.command("eval")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--labels",
    "labels_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="labels.csv: file, animal, bird, kind",
)
@click.option("--backend", type=click.Choice(available()), default=None, help="detector back-end")
@click.option("--model", default=None, help="model id (single-model back-ends)")
@click.option("--threshold", type=float, default=None, help="score threshold for every category")
@click.option("--tiling/--no-tiling", default=None, help="also run on tiles of wide frames")
@click.option(
    "--ir",
    "ir_enhance",
    type=click.Choice(["off", "enhanced", "both"]),
    default=None,
    help="night infra-red frames: CLAHE enhancement",
)
@click.option(
    "--member",
    "members",
    multiple=True,
    help="ensemble member model id, in cascade order (repeat; default YOLOX-Nano, NanoDet-m)",
)
@click.option(
    "--second-look-below",
    type=float,
    default=None,
    help="ensemble cascade: the later members look where the first scores below this",
)
@click.option("--all-members", is_flag=True, help="ensemble: every member on every frame")
@click.option(
    "--models-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="model store (default: the node's store)",
)
def eval_cmd(
    directory: Path,
    labels_csv: Path,
    backend: str | None,
    model: str | None,
    threshold: float | None,
    tiling: bool | None,
    ir_enhance: str | None,
    members: tuple[str, ...],
    second_look_below: float | None,
    all_members: bool,
    models_dir: Path | None,
) -> None:
    """评估检测器 Evaluate the detector on labelled images (image- and sequence-level precision
    and recall)."""
    data: dict[str, object] = {}
    if members:
        data["members"] = list(members)
    if second_look_below is not None:
        data["second_look_below"] = second_look_below
    if all_members:
        data["second_look_below"] = None
    if backend is not None:
        data["backend"] = backend
        if model is None and backend != "ensemble":
            from models.registry import load_manifest

            model = next(m.id for m in load_manifest().models if m.decoder == backend)
    if model is not None:
        data["model"] = model
    if threshold is not None:
        data["score_threshold"] = threshold
        data["category_thresholds"] = {}
    if tiling is not None:
        data["tiling"] = tiling
    if ir_enhance is not None:
        data["ir_enhance"] = ir_enhance
    try:
        settings = detector_settings(data)
    except ValueError as exc:  # pydantic's ValidationError: an option the back-end refuses
        raise click.BadParameter(str(exc)) from exc
    rep = evaluate(directory, labels_csv, settings, models_dir)
    click.echo(format_report(rep))
