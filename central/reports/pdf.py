"""Writes a DailyReport as a printable A4 PDF in Chinese.

fpdf2 draws it: pure Python (no system libraries beyond the font), embeds a subset of a TrueType
collection (`collection_font_number`), and its tables break across pages between rows and repeat
their header row on every page, which is what a printed report needs. ReportLab does the same
with more code (platypus flowables) and a larger install; WeasyPrint needs Pango and Cairo.

The font is WenQuanYi Micro Hei (Debian's fonts-wqy-microhei, Apache-2.0 or GPLv3 with font
exception): compact, covers GB 18030's common hanzi, and is a 5 MB package on a Raspberry Pi or
a server; only the glyphs a report uses are embedded (about 100-300 KB), so the PDF reads the
same on any machine without the font.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.enums import TableCellFillMode, WrapMode, XPos, YPos
from PIL import Image, UnidentifiedImageError

from central import messages
from central.reports.model import (
    AnomalyItem,
    CaseRecord,
    DailyReport,
    Photo,
    Section,
    SiteSection,
)
from central.reports.tables import case_fields, info_table, sightings_text, species_cells

log = logging.getLogger(__name__)

# Where Debian, Raspberry Pi OS and Ubuntu put a CJK font, the first that exists is used.
FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
FAMILY = "cjk"
THUMB_MM = 56  # three evidence thumbnails side by side on A4 portrait
THUMB_PX = 480  # the JPEG embedded per thumbnail: sharp at 56 mm, about 30 KB
THUMBS_PER_ITEM = 3
RED = (180, 20, 20)
CELL_CHARS = 600  # a longer note is cut in print (the JSON and XLSX keep it whole): a table
# row taller than a page cannot be placed
HEAD_FILL = (230, 236, 242)


class PdfError(RuntimeError):
    """The PDF could not be written (no CJK font installed)."""


def find_font(configured: Path | None = None) -> Path:
    """The CJK font to embed: the configured one, else the first installed candidate."""
    if configured is not None:
        if not configured.is_file():
            raise PdfError(f"report font {configured} does not exist")
        return configured
    for path in FONT_CANDIDATES:
        if path.is_file():
            return path
    raise PdfError(
        "no CJK font for the PDF report: install fonts-wqy-microhei "
        "(apt-get install fonts-wqy-microhei) or set report.pdf_font"
    )


class _Document(FPDF):
    def __init__(self, title: str, as_of: datetime, font: Path) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._title = title
        self.add_font(FAMILY, fname=str(font))
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=16)
        self.set_title(title)
        self.set_subject(messages.PDF_SUBJECT)
        self.set_creator("WildWatch")
        self.set_lang("zh-CN")
        # the as-of time, not now: the same report gives the same bytes (and sha256)
        self.set_creation_date(as_of)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, size=8)
        self.set_text_color(90)
        text = f"{self._title}    " + messages.PDF_PAGE.format(page=self.page_no())
        self.cell(0, 5, text, align="C")
        self.set_text_color(0)

    # -- building blocks --------------------------------------------------------------------

    def heading(
        self, text: str, size: float = 12, color: tuple[int, int, int] | None = None
    ) -> None:
        self.set_font(FAMILY, size=size)
        if color:
            self.set_text_color(*color)
        self.multi_cell(
            0, size * 0.55, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, wrapmode=WrapMode.CHAR
        )
        self.set_text_color(0)
        self.ln(1)
        self.set_font(FAMILY, size=9)

    def say(self, text: str, *, color: tuple[int, int, int] | None = None) -> None:
        self.set_font(FAMILY, size=9)
        if color:
            self.set_text_color(*color)
        self.multi_cell(0, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, wrapmode=WrapMode.CHAR)
        self.set_text_color(0)

    def grid(self, headers: Sequence[tuple[str, int]], rows: Sequence[Sequence[object]]) -> None:
        """A table whose rows never split and whose header repeats on each page."""
        self.set_font(FAMILY, size=8)
        total = sum(w for _, w in headers)
        scale = min(1.0, self.epw / total)  # never wider than the page
        with self.table(
            col_widths=[w * scale for _, w in headers],
            width=total * scale,
            align="LEFT",
            text_align="LEFT",
            line_height=4.2,
            wrapmode=WrapMode.CHAR,
            headings_style=FontFace(fill_color=HEAD_FILL),
            cell_fill_mode=TableCellFillMode.NONE,
            repeat_headings=1,
            padding=0.8,
        ) as table:
            head = table.row()
            for text, _ in headers:
                head.cell(text)
            for values in rows:
                row = table.row()
                for value in values:
                    text = "" if value is None else str(value)
                    row.cell(text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…")
        self.ln(2)


def _time(value: datetime | None) -> str:
    return f"{value:%m-%d %H:%M}" if value is not None else ""


def _anomaly_row(a: AnomalyItem) -> list[object]:
    species = a.species_chinese or a.species_scientific or a.category_zh
    return [
        _time(a.time),
        a.camera,
        a.rule_zh,
        species,
        a.count,
        a.severity_zh,
        a.review_zh,
        a.message,
    ]


def _thumbnail(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_PX, THUMB_PX))
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        log.warning("evidence %s left out of the PDF: %s", path, exc)
        return None


def _evidence(pdf: _Document, items: Sequence[AnomalyItem], evidence_dir: Path | None) -> None:
    """Thumbnails of each epidemic anomaly's photos, three to a row, captioned."""
    shown = [a for a in items if a.photos]
    if not shown:
        return
    pdf.heading(messages.PDF_EVIDENCE, size=10)
    for item in shown:
        caption = (
            f"{_time(item.time)} {item.camera} {item.rule_zh} "
            f"{item.species_chinese or ''} ×{item.count}  ({item.event_id[:8]})"
        )
        _thumbs(pdf, caption, item.photos, evidence_dir)


def _thumbs(
    pdf: _Document, caption: str, photos: Sequence[Photo], evidence_dir: Path | None
) -> None:
    """A captioned row of up to three thumbnails, kept on one page."""
    images = []
    for photo in photos[:THUMBS_PER_ITEM]:
        path = evidence_dir / photo.path if evidence_dir and photo.path else None
        images.append(_thumbnail(path) if path is not None else None)
    heights = [THUMB_MM * im.height / im.width for im in images if im is not None]
    height = max(heights, default=8)
    if pdf.get_y() + height + 12 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.say(caption)
    top, x = pdf.get_y(), pdf.l_margin
    for image in images:
        if image is None:
            pdf.set_xy(x, top)
            pdf.set_font(FAMILY, size=8)
            pdf.multi_cell(THUMB_MM, 8, messages.PDF_PHOTO_MISSING, border=1, align="C")
        else:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
            pdf.image(buffer, x=x, y=top, w=THUMB_MM)
        x += THUMB_MM + 3
    pdf.set_xy(pdf.l_margin, top + height + 3)


def _signoff(pdf: _Document, site: SiteSection) -> None:
    s = site.signoff
    blank = messages.PDF_SIGN_BLANK
    rows = [
        [messages.PDF_SIGN_REPORTER, s.reporter if s else blank],
        [messages.PDF_SIGN_PHONE, s.reporter_phone if s else blank],
        [messages.PDF_SIGN_AUDITOR, s.auditor if s else blank],
        [messages.PDF_SIGN_TIME, messages.long_time(s.signed_at) if s else blank],
    ]
    pdf.grid([("项目 Item", 50), ("内容 Value", 130)], rows)


def _case(pdf: _Document, case: CaseRecord, evidence_dir: Path | None = None) -> None:
    """A case's fields, one per row, in the order of the bureau's form."""
    f = case_fields(case)
    pdf.grid(
        [(f"#{case.case_id}" + ("（补报 late）" if case.late else ""), 40), ("", 140)],
        [
            ["发现 Found", f["found"]],
            ["物种 Species", f["species"]],
            ["数量 Counts", f["counts"]],
            ["临床症状 Signs", f["signs"]],
            ["来源 Origin", f["origin"]],
            ["人员接触 Contact", f["contact"]],
            ["3公里禽场 Poultry", f["poultry"]],
            ["采样送检 Samples", f["samples"]],
            ["处置措施 Measures", f["measures"]],
            ["初步判断 Judgement", f["judgement"]],
            *([["待补充 Missing", f["missing"]]] if f["missing"] else []),
        ],
    )
    taken = [p for p in case.photos if (p.path or "").startswith("cases/")]  # not the camera's
    if taken and evidence_dir is not None:
        _thumbs(pdf, f"#{case.case_id} {messages.PDF_EVIDENCE}", taken, evidence_dir)


def _site(pdf: _Document, n: int, site: SiteSection, evidence_dir: Path | None) -> None:
    pdf.heading(
        messages.PDF_SITE_HEADING.format(n=n, name=site.name_zh, code=site.station_code or "-")
    )
    if site.signoff is None:
        pdf.say(messages.PDF_UNREVIEWED, color=RED)
    else:
        pdf.say(messages.PDF_REVIEWED)
    pdf.say(f"{messages.INFO_ABNORMAL}：{site.abnormal_zh}    {site.summary_zh}")
    pdf.say(messages.PDF_OBSERVATIONS.format(count=site.observation_events))
    pdf.ln(1)
    pdf.heading(messages.SHEET_SPECIES, size=10)
    if site.species:
        pdf.grid(messages.PDF_SPECIES_HEADERS, [species_cells(sp) for sp in site.species])
    else:
        pdf.say(messages.PDF_NO_WILDLIFE)
    sections = [(messages.section_zh(s), site.in_section(s)) for s in Section]
    sections.append((messages.SHEET_LATE, site.late_additions))
    for title, items in sections:
        pdf.heading(f"{title}（{len(items)}）", size=10)
        if items:
            pdf.grid(messages.PDF_ANOMALY_HEADERS, [_anomaly_row(a) for a in items])
        else:
            pdf.say(messages.PDF_NONE)
    if site.cases:
        pdf.heading(f"{messages.SHEET_CASES}（{len(site.cases)}）", size=10)
        for case in site.cases:
            _case(pdf, case, evidence_dir)
    if site.patrols:
        pdf.heading(f"{messages.SHEET_PATROLS}（{len(site.patrols)}）", size=10)
        pdf.grid(
            messages.PDF_PATROL_HEADERS,
            [
                [
                    f"{p.started_at:%m-%d %H:%M}–{p.ended_at:%H:%M}",
                    p.observers,
                    p.route,
                    p.weather,
                    sightings_text([(x.species_chinese, x.count) for x in p.sightings])
                    + (f"（{p.note}）" if p.note else ""),
                ]
                for p in site.patrols
            ],
        )
    disease = site.in_section(Section.DISEASE) + [
        a for a in site.late_additions if a.section is Section.DISEASE
    ]
    _evidence(pdf, disease, evidence_dir)
    if site.roster_gaps:
        pdf.heading(messages.SHEET_ROSTER, size=10)
        pdf.grid(
            messages.PDF_ROSTER_HEADERS,
            [
                [
                    messages.long_time(g.start),
                    messages.long_time(g.end),
                    round((g.end - g.start).total_seconds() / 3600, 1),
                ]
                for g in site.roster_gaps
            ],
        )
    pdf.heading("审核签发 Sign-off", size=10)
    _signoff(pdf, site)


def render_pdf(
    report: DailyReport, *, evidence_dir: Path | None = None, font: Path | None = None
) -> bytes:
    """The report as PDF bytes; `evidence_dir` holds the photos (thumbnails of epidemic cases)."""
    pdf = _Document(report.title, report.generated_at, find_font(font))
    pdf.add_page()
    pdf.heading(report.title, size=15)
    pdf.say(report.title_en)
    if any(site.signoff is None for site in report.sites):
        pdf.heading(messages.PDF_UNREVIEWED, size=13, color=RED)
    pdf.ln(1)
    info = info_table(report)
    pdf.grid([("项目 Item", 50), ("内容 Value", 130)], info.rows)
    for n, site in enumerate(report.sites, start=1):
        _site(pdf, n, site, evidence_dir)
    return bytes(pdf.output())


def write_pdf(
    report: DailyReport,
    path: Path,
    *,
    evidence_dir: Path | None = None,
    font: Path | None = None,
) -> Path:
    """Write the PDF to `path` (the caller makes it atomic where needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_pdf(report, evidence_dir=evidence_dir, font=font))
    return path


def render_express_pdf(
    *,
    title: str,
    facts: list[list[object]],
    case: CaseRecord | None,
    evidence: AnomalyItem | None,
    as_of: datetime,
    evidence_dir: Path | None = None,
    font: Path | None = None,
) -> bytes:
    """The express report (快报) of one case: its facts, the case record, the evidence."""
    pdf = _Document(title, as_of, find_font(font))
    pdf.add_page()
    pdf.heading(title, size=15)
    pdf.grid([("项目 Item", 50), ("内容 Value", 130)], facts)
    if case is not None:
        pdf.heading(messages.SHEET_CASES, size=10)
        _case(pdf, case)  # its photos are the evidence below
    if evidence is not None:
        _evidence(pdf, [evidence], evidence_dir)
    return bytes(pdf.output())
