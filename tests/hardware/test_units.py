"""Shipped systemd units are installed with the package and call existing subcommands."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from hardware import unit_path
from wildwatch.cli import cli


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(unit_path(name))
    return parser


def test_units_are_packaged_and_run_real_commands() -> None:
    runner = CliRunner()
    for name, sub in [
        ("wildwatch-edge.service", ["edge", "run"]),
        ("wildwatch-central.service", ["central", "serve"]),
    ]:
        exec_start = _unit(name)["Service"]["ExecStart"]
        assert " ".join(sub) in exec_start
        assert _unit(name)["Service"]["Restart"] == "always"
        result = runner.invoke(cli, [*sub, "--help"])
        assert result.exit_code == 0, result.output
        assert "--config" in result.output


def test_report_unit_catches_up_instead_of_taking_the_boot_date() -> None:
    service = _unit("wildwatch-report.service")["Service"]
    exec_start = service["ExecStart"]
    assert "central report" in exec_start and "--catch-up" in exec_start
    assert "--date" not in exec_start and "date +" not in exec_start  # no day from the clock
    assert service["Type"] == "oneshot"
    result = CliRunner().invoke(cli, ["central", "report", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--config", "--catch-up", "--grace-minutes", "--date"):
        assert option in result.output


def test_report_timer_follows_the_configured_cutoff() -> None:
    """Every 5 minutes; the command decides whether a window has closed (cut-off + grace)."""
    timer = _unit("wildwatch-report.timer")["Timer"]
    assert timer["OnCalendar"] == "*-*-* *:00/5:00"
    assert "15:00" not in timer["OnCalendar"]
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        checked = subprocess.run(
            [analyze, "calendar", "--iterations=3", timer["OnCalendar"]],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.count(":") >= 6  # three elapse times were listed


def test_report_waits_after_boot_for_node_outboxes(tmp_path: Path) -> None:
    """The ExecCondition (unit escapes undone) passes only 10 minutes after boot."""
    condition = _unit("wildwatch-report.service")["Service"]["ExecCondition"]
    command = condition.replace("$$", "$").replace("%%", "%")
    assert command.startswith("/bin/sh -c '") and command.endswith("'")
    script = command[len("/bin/sh -c '") : -1]
    assert "/proc/uptime" in script
    fake = tmp_path / "uptime"
    for uptime, passes in [("42.17 80.00", False), ("599.99 1.0", False), ("600.01 1.0", True)]:
        fake.write_text(uptime + "\n", encoding="utf-8")
        ran = subprocess.run(["/bin/sh", "-c", script.replace("/proc/uptime", str(fake))])
        assert (ran.returncode == 0) is passes, uptime
