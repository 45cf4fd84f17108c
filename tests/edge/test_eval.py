"""Image-level evaluation: the pure report, evaluate() on a few real images, the click command."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.payloads import Category
from edge.detect import DetectorSettings
from edge.eval import (
    Label,
    Outcome,
    eval_cmd,
    evaluate,
    format_report,
    read_labels,
    report,
    sequences,
)

FEW = (
    "bird_coral_bird.jpg",
    "ct_ecoassist_empty_night.jpg",
    "ct_ena24_8831.jpg",
    "ct_md_pheasant.jpg",
)


def _outcome(
    file: str, has_animal: bool | None, has_bird: bool | None, kind: str, **scores: float
) -> Outcome:
    return Outcome(
        Label(file, has_animal, has_bird, kind),
        {Category(k): v for k, v in scores.items()},
        5.0,
        8.0,
    )


def test_report_counts_per_kind_and_uses_animal_threshold_for_birds() -> None:
    outcomes = [
        _outcome("a", True, False, "camtrap_night", animal=0.4),
        _outcome("b", True, None, "camtrap_night", bird=0.25),  # unsure bird -> animal
        _outcome("c", False, False, "camtrap_night_empty", animal=0.35),
        _outcome("d", True, True, "bird_photo", bird=0.9),  # not camtrap: bird only
        _outcome("e", True, True, "camtrap_day"),
    ]
    th = {Category.ANIMAL: 0.2, Category.BIRD: 0.5}
    rep = report(outcomes, lambda c: th.get(c, 0.3))
    assert (rep.animal.tp, rep.animal.fp, rep.animal.fn) == (2, 1, 1)
    assert rep.animal.precision == pytest.approx(2 / 3)
    assert (rep.bird.tp, rep.bird.fp, rep.bird.fn) == (1, 0, 1)
    assert rep.per_kind["camtrap_night"][0].recall == 1.0
    assert rep.missed_animals == ["e"] and rep.false_animals == ["c"]
    assert rep.median_total_ms == 8.0
    text = format_report(rep)
    assert "camtrap_night" in text and "动物" in text and "animal" in text


def test_read_labels(shared_dir: Path) -> None:
    labels = read_labels(shared_dir / "data" / "labels.csv")
    assert len(labels) >= 30
    assert any(lab.bird is None for lab in labels)
    assert all(lab.kind for lab in labels)


def _subset(shared_dir: Path, tmp_path: Path) -> Path:
    src = shared_dir / "data" / "labels.csv"
    out = tmp_path / "labels.csv"
    with src.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["file"] in FEW]
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_evaluate_on_a_few_images(shared_dir: Path, images_dir: Path, models_dir: Path) -> None:
    rep = evaluate(
        images_dir, shared_dir / "data" / "labels.csv", DetectorSettings(), models_dir, files=FEW
    )
    assert rep.images == len(FEW)
    assert rep.bird.tp >= 1 and rep.animal.tp >= 1
    assert rep.median_inference_ms > 0
    assert "ct_ena24_8831.jpg" not in rep.missed_animals  # a bear in daylight


def test_eval_command_prints_the_table(
    shared_dir: Path, images_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    labels = _subset(shared_dir, tmp_path)
    result = CliRunner().invoke(
        eval_cmd,
        [
            str(images_dir),
            "--labels",
            str(labels),
            "--backend",
            "yolox",
            "--threshold",
            "0.3",
            "--models-dir",
            str(models_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bird_photo" in result.output and "全部 all" in result.output


def _at(o: Outcome, second: int, seq_id: str = "") -> Outcome:
    lab = o.label
    return replace(
        o,
        label=replace(lab, seq_id=seq_id),
        captured_at=datetime(2026, 5, 1, 6, 0, 0, tzinfo=UTC) + timedelta(seconds=second),
    )


def test_sequences_follow_the_60_s_rule_and_the_cameras_own_bursts() -> None:
    th = {Category.ANIMAL: 0.2, Category.BIRD: 0.5}
    outcomes = [
        # one burst (EXIF 0 s, 20 s, 75 s): the heron is missed in two frames of three
        _at(_outcome("cam1/a.jpg", True, True, "camtrap_day"), 0),
        _at(_outcome("cam1/b.jpg", True, True, "camtrap_day", bird=0.8), 20),
        _at(_outcome("cam1/c.jpg", True, True, "camtrap_day"), 75),
        # 200 s later: a new sequence, empty and nothing said
        _at(_outcome("cam1/d.jpg", False, False, "camtrap_day"), 275),
        # the same times in another folder are another camera
        _at(_outcome("cam2/a.jpg", True, False, "camtrap_night", animal=0.3), 0),
        # no EXIF time: a sequence of its own
        _outcome("cam3/x.jpg", True, False, "camtrap_night"),
        # the camera's own burst named in labels.csv, times ignored
        _at(_outcome("cam4/p.jpg", True, None, "camtrap_day", animal=0.5), 0, "burst-7"),
        _at(_outcome("cam4/q.jpg", True, True, "camtrap_day"), 3000, "burst-7"),
        # another camera's burst-7 is another sequence
        _at(_outcome("cam5/r.jpg", False, False, "camtrap_day"), 0, "burst-7"),
    ]
    groups = sequences(outcomes)
    assert sorted(sorted(o.label.file for o in g) for g in groups) == [
        ["cam1/a.jpg", "cam1/b.jpg", "cam1/c.jpg"],
        ["cam1/d.jpg"],
        ["cam2/a.jpg"],
        ["cam3/x.jpg"],
        ["cam4/p.jpg", "cam4/q.jpg"],
        ["cam5/r.jpg"],
    ]
    rep = report(outcomes, lambda c: th.get(c, 0.3))
    assert rep.sequences == 6
    # image level: 2 of the 3 heron frames missed; sequence level: the burst is found
    assert (rep.bird.tp, rep.bird.fn) == (1, 3)
    assert (rep.seq_bird.tp, rep.seq_bird.fn, rep.seq_bird.tn) == (1, 1, 4)
    assert (rep.seq_animal.tp, rep.seq_animal.fn, rep.seq_animal.tn) == (3, 1, 2)
    assert rep.seq_animal.recall == pytest.approx(3 / 4)
    assert "序列级 sequence level (6 序列 sequences)" in format_report(rep)


def test_read_labels_takes_an_optional_seq_id(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("file,animal,bird,kind,seq_id\na.jpg,1,,camtrap_day, s1 \n", encoding="utf-8")
    assert read_labels(path) == [Label("a.jpg", True, None, "camtrap_day", "s1")]


def test_eval_command_runs_a_chosen_cascade_and_refuses_a_wrong_option(
    shared_dir: Path, images_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    labels = _subset(shared_dir, tmp_path)
    common = [str(images_dir), "--labels", str(labels), "--models-dir", str(models_dir)]
    cascade = ["--member", "yolox_nano_416_coco", "--member", "mdlite_yolox_tiny_416"]
    result = CliRunner().invoke(eval_cmd, [*common, *cascade, "--second-look-below", "0.5"])
    assert result.exit_code == 0, result.output
    assert "[yolox+mdlite416](max) cascade<0.5" in result.output
    assert "序列级 sequence level (4 序列 sequences)" in result.output
    wrong = CliRunner().invoke(eval_cmd, [*common, "--backend", "yolox", *cascade])
    assert wrong.exit_code == 2 and "members" in wrong.output
