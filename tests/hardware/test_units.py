"""Shipped systemd units are installed with the package and call existing subcommands."""

from __future__ import annotations

import configparser

from click.testing import CliRunner

from central.cli import cli
from hardware import unit_path


def test_units_are_packaged_and_run_real_commands() -> None:
    runner = CliRunner()
    for name, sub in [
        ("wildwatch-edge.service", ["edge", "run"]),
        ("wildwatch-central.service", ["central", "serve"]),
    ]:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read(unit_path(name))
        exec_start = parser["Service"]["ExecStart"]
        assert " ".join(sub) in exec_start
        assert parser["Service"]["Restart"] == "always"
        result = runner.invoke(cli, [*sub, "--help"])
        assert result.exit_code == 0, result.output
        assert "--config" in result.output
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(unit_path("wildwatch-report.timer"))
    assert timer["Timer"]["OnCalendar"].endswith("15:00:00 Asia/Shanghai")
