"""GET /api/reports/schema.json: the JSON Schema of the daily report file, public (it is the
contract a bureau's system reads the reports by, and holds no station data)."""

from __future__ import annotations

from fastapi import APIRouter

from central.reports.model import REPORT_SCHEMA_PATH, report_json_schema

router = APIRouter(tags=["reports"])


@router.get(REPORT_SCHEMA_PATH)
def report_schema() -> dict[str, object]:
    """The daily report's JSON Schema (draft 2020-12), with its version in `$id`."""
    return report_json_schema()
