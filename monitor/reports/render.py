"""Writing a Report as xlsx, docx, html and csv. Every cell of post text passes neutralize()."""

from __future__ import annotations

import base64
import csv
import html
import io
from datetime import datetime
from pathlib import Path

from monitor.clock import show
from monitor.reports.model import CHANGE, DATE, HOURS, INT, MINUTES, PCT, TEXT, TIME, Report, Table
from monitor.reports.period import NAMES
from monitor.reports.safe import display, local_naive, neutralize

FORMATS = ("xlsx", "docx", "html", "csv")
# Printed documents carry the head of long tables; Excel and CSV carry every row.
PRINT_ROWS = 100
USABLE_CM = 26.0  # landscape A4 less 1.8 cm margins
NUMBER_FORMATS = {PCT: "0.0%", CHANGE: "+0.0%;-0.0%;0.0%", HOURS: "0.00", MINUTES: "0.0", INT: "0", TIME: "yyyy-mm-dd hh:mm", DATE: "yyyy-mm-dd"}


def base_name(report: Report) -> str:
    return f"舆情{NAMES[report.period.kind]}_{report.period.label}"


def _cell(value, kind: str):
    """A value as the spreadsheet should store it: numbers and dates stay typed."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return local_naive(value)
    if isinstance(value, str):
        return neutralize(value)
    return value


def write_xlsx(report: Report, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    cover = wb.active
    cover.title = "摘要"
    cover["A1"] = f"{report.period.name}（{report.period.label}，{report.period.title}）"
    cover["A1"].font = Font(bold=True, size=14)
    for i, line in enumerate(report.headline, start=3):
        cover.cell(row=i, column=1, value=neutralize(line))
    cover.cell(row=len(report.headline) + 4, column=1, value=f"生成时间：{show(report.generated_at)}（北京时间）")
    if report.font_note:
        cover.cell(row=len(report.headline) + 5, column=1, value=report.font_note)
    cover.column_dimensions["A"].width = 110

    header_font, header_fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
    for table in report.tables:
        ws = wb.create_sheet(table.title[:31])
        ws.append([c.header for c in table.columns])
        for cell in ws[1]:
            cell.font, cell.fill = header_font, header_fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        for row in table.rows:
            ws.append([_cell(v, c.kind) for v, c in zip(row, table.columns)])
        for i, col in enumerate(table.columns, start=1):
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = col.width + 2
            fmt = NUMBER_FORMATS.get(col.kind)
            if fmt and table.rows:
                for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                    cell.number_format = fmt
        ws.freeze_panes = "A2"
        if table.note:
            ws.cell(row=len(table.rows) + 3, column=1, value=table.note)
    wb.save(path)
    return path


def write_csv(report: Report, folder: Path) -> list[Path]:
    paths = []
    for table in report.tables:
        path = folder / f"{base_name(report)}_{table.title}.csv"
        # UTF-8 with BOM: Excel on Windows then reads the Chinese correctly.
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([c.header for c in table.columns])
            for row in table.rows:
                writer.writerow([
                    "" if v is None else neutralize(display(v, c.kind)) if c.kind in (TEXT, TIME, DATE) else _csv_number(v, c.kind)
                    for v, c in zip(row, table.columns)
                ])
        paths.append(path)
    return paths


def _csv_number(value, kind: str):
    return round(value, 4) if kind in (PCT, CHANGE) else value


def _rows_for_print(table: Table) -> tuple[list[list], str]:
    if len(table.rows) <= PRINT_ROWS:
        return table.rows, ""
    return table.rows[:PRINT_ROWS], f"共 {len(table.rows)} 行，此处列出前 {PRINT_ROWS} 行；完整内容见 Excel 或 CSV。"


def write_html(report: Report, path: Path) -> Path:
    e = html.escape
    parts = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{e(report.period.name)} {e(report.period.label)}</title>",
        "<style>body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #bbb;padding:4px 8px;font-size:14px}"
        "th{background:#ddebf7}td.n{text-align:right}.note{color:#555;font-size:13px}img{max-width:100%}</style></head><body>",
        f"<h1>{e(report.period.name)}（{e(report.period.label)}）</h1>",
        f"<p>{e(report.period.title)}　生成时间：{e(show(report.generated_at))}（北京时间）</p>",
    ]
    parts += [f"<p>{e(line)}</p>" for line in report.headline]
    if report.font_note:
        parts.append(f"<p class='note'>{e(report.font_note)}</p>")
    for chart in report.charts:
        data = base64.b64encode(chart.png).decode("ascii")
        parts.append(f"<figure><img alt='{e(chart.title)}' src='data:image/png;base64,{data}'><figcaption>{e(chart.title)}</figcaption></figure>")
    for table in report.tables:
        rows, cut = _rows_for_print(table)
        parts.append(f"<h2>{e(table.title)}</h2><table><tr>" + "".join(f"<th>{e(c.header)}</th>" for c in table.columns) + "</tr>")
        for row in rows:
            cells = "".join(
                f"<td class='{'n' if c.kind not in (TEXT, TIME, DATE) else ''}'>{e(display(v, c.kind))}</td>"
                for v, c in zip(row, table.columns)
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
        for note in (table.note, cut):
            if note:
                parts.append(f"<p class='note'>{e(note)}</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_docx(report: Report, path: Path) -> Path:
    from docx import Document
    from docx.enum.section import WD_ORIENT
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt

    doc = Document()
    section = doc.sections[0]
    # Landscape A4: the clock and overdue tables are wide.
    section.orientation = WD_ORIENT.LANDSCAPE
    section.page_width, section.page_height = Cm(29.7), Cm(21.0)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.8))
    for style_name in ("Normal", "Title", "Heading 1", "Heading 2"):
        style = doc.styles[style_name]
        style.font.name = "宋体" if style_name == "Normal" else "黑体"
        style.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), style.font.name)
    doc.styles["Normal"].font.size = Pt(10.5)

    doc.add_heading(f"{report.period.name}（{report.period.label}）", level=0)
    doc.add_paragraph(f"统计期间：{report.period.title}　生成时间：{show(report.generated_at)}（北京时间）")
    doc.add_heading("一、总体情况", level=1)
    for line in report.headline:
        doc.add_paragraph(line)
    if report.font_note:
        doc.add_paragraph(report.font_note)
    if report.charts:
        doc.add_heading("二、图表", level=1)
        for n, chart in enumerate(report.charts, start=1):
            doc.add_picture(io.BytesIO(chart.png), width=Cm(18))
            doc.add_paragraph(f"图 {n}　{chart.title}")
    doc.add_heading(("三" if report.charts else "二") + "、统计表", level=1)
    for table in report.tables:
        doc.add_heading(table.title, level=2)
        rows, cut = _rows_for_print(table)
        grid = doc.add_table(rows=1 + len(rows), cols=len(table.columns))
        grid.style = "Table Grid"
        grid.autofit = False
        total = sum(c.width for c in table.columns)
        widths = [Cm(USABLE_CM * c.width / total) for c in table.columns]
        for col, width in zip(grid.columns, widths):
            col.width = width
        for r, row in enumerate([[c.header for c in table.columns], *rows]):
            for cell, value, col, width in zip(grid.rows[r].cells, row, table.columns, widths):
                cell.width = width  # Word reads cell widths, LibreOffice the grid: set both
                cell.text = value if r == 0 else display(value, col.kind)
                if r == 0:
                    for run in cell.paragraphs[0].runs:
                        run.font.bold = True
        for note in (table.note, cut):
            if note:
                doc.add_paragraph(note)
    doc.save(path)
    return path


def write_all(report: Report, folder: Path, formats: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    name = base_name(report)
    paths: list[Path] = []
    if "xlsx" in formats:
        paths.append(write_xlsx(report, folder / f"{name}.xlsx"))
        for chart in report.charts:  # beside the workbook: Excel files carry no charts of ours
            png = folder / f"{name}_{chart.title}.png"
            png.write_bytes(chart.png)
            paths.append(png)
    if "docx" in formats:
        paths.append(write_docx(report, folder / f"{name}.docx"))
    if "html" in formats:
        paths.append(write_html(report, folder / f"{name}.html"))
    if "csv" in formats:
        paths.extend(write_csv(report, folder))
    return paths
