"""The printed daily report: Chinese text that pdftotext reads back (not tofu), A4, one page for a
zero report, tables that repeat their header on each page, evidence thumbnails, 未经审核 marks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from central.reports.pdf import PdfError, find_font, render_pdf, write_pdf
from tests.central.report_days import busy_day, zero_day


def _text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def _info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return dict(
        (k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in out.stdout.splitlines())
    )


def _render(path: Path, out: Path) -> list[Path]:
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(path), str(out)], check=True)
    return sorted(out.parent.glob(f"{out.name}-*.png"))


def test_zero_report_is_one_a4_page_in_chinese_marked_unreviewed(tmp_path: Path) -> None:
    path = write_pdf(zero_day(), tmp_path / "zero.pdf")
    info = _info(path)
    assert info["Pages"] == "1"
    assert info["Page size"].endswith("(A4)")
    text = _text(path)
    for wanted in (
        "陆生野生动物疫源疫病监测日报",
        "下渚湖湿地监测点",
        "零报告",
        "未经审核",
        "填报人",
    ):
        assert wanted in text, wanted
    assert "\ufffd" not in text and "□" not in text  # no replacement glyphs (tofu)
    (page,) = _render(path, tmp_path / "zero")
    pixels = np.asarray(Image.open(page).convert("L"))
    assert pixels.shape == (585, 414)  # 50 dpi A4 portrait
    assert (pixels < 128).mean() > 0.005  # text was drawn, not a blank page


def test_signed_report_names_reporter_phone_and_auditor(tmp_path: Path) -> None:
    text = _text(write_pdf(zero_day(signed=True), tmp_path / "signed.pdf"))
    assert "未经审核" not in text
    assert "已审核签发" in text
    for wanted in ("李监测", "13800138000", "王站长", "2026-12-03 14:40:00"):
        assert wanted in text


def test_busy_day_tables_break_across_pages_with_headers_and_thumbnails(
    tmp_path: Path, images_dir: Path
) -> None:
    report = busy_day(tmp_path / "evidence", images_dir, anomalies=120)
    path = write_pdf(report, tmp_path / "busy.pdf", evidence_dir=tmp_path / "evidence")
    pages = int(_info(path)["Pages"])
    assert pages >= 4
    text = _text(path)
    per_page = text.split("\f")
    # the anomaly table's header repeats at the top of each page it continues on
    with_header = [p for p in per_page if "说明 Description" in p]
    assert len(with_header) >= 3
    # every anomaly is printed exactly once (no row lost or doubled at a page break)
    numbers = [int(n) for n in re.findall(r"第(\d+)起", text)]
    assert sorted(numbers) == list(range(1, 121))
    assert "照片未上传" in text  # a photo listed but not uploaded says so
    # both sites; the unsigned one marked, the signed one not
    assert "长兴扬子鳄保护区监测点" in text and "王站长" in text
    assert text.count("未经审核 / not reviewed") == 2  # the title stamp and the unsigned site
    images = subprocess.run(
        ["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    assert len(images) >= 12  # thumbnails of the epidemic cases
    assert len(_render(path, tmp_path / "busy")) == pages


def test_same_report_same_bytes(tmp_path: Path) -> None:
    assert render_pdf(zero_day()) == render_pdf(zero_day())  # the sha256 sent is reproducible


def test_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PdfError, match="does not exist"):
        find_font(tmp_path / "nope.ttc")
    with pytest.raises(PdfError, match="does not exist"):
        render_pdf(zero_day(), font=tmp_path / "nope.ttc")
