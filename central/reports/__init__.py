"""Reports to the provincial bureau: the daily report (日报, zero report when nothing happened).

model (the report as data) → tables (renderer-neutral rows) → xlsx and pdf; record keeps the
JSON that says which days were reported; daily builds a report from the database; delivery
(with channels and settings) carries each site's report to the bureau at the cut-off.
"""
