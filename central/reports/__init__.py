"""Reports to the provincial bureau: the daily report (日报, zero report when nothing happened)."""
