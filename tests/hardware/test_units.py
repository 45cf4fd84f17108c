"""Shipped systemd units are installed with the package and call existing subcommands."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
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


# --- the edge unit on an unattended Pi, checked as systemd reads it -------------------------------

REPO = Path(__file__).resolve().parents[2]
PROVISION = REPO / "hardware" / "provision"
EXEC_KEYS = ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecCondition", "ExecStop")


def _verify_root(root: Path, units: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify --root` on `units` (name -> text) installed in a temporary root.

    The root holds the host's system units (sysinit.target and the rest the units depend on)
    and an executable stub at each command path the units name, as provisioning leaves them
    (/opt/wildwatch/.venv/bin/wildwatch does not exist on a development machine).
    """
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None
    system = root / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    host_units = Path("/usr/lib/systemd/system")
    if host_units.is_dir():
        shutil.copytree(host_units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    for name, text in units.items():
        (system / name).write_text(text, encoding="utf-8")
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(text)
        for section in parser.sections():
            for key in EXEC_KEYS:
                if key in parser[section]:
                    command = parser[section][key].split()[0].lstrip("-@+!:")
                    stub = root / command.lstrip("/")
                    stub.parent.mkdir(parents=True, exist_ok=True)
                    stub.write_text("#!/bin/sh\n", encoding="utf-8")
                    stub.chmod(0o755)
    return subprocess.run(
        [analyze, "verify", f"--root={root}", *units],
        capture_output=True,
        text=True,
        check=False,
    )


def _verified(result: subprocess.CompletedProcess[str], names: list[str]) -> bool:
    """Passed: exit 0 and not one warning about our units (verify exits 0 on a misspelt
    setting or value and only says so)."""
    output = result.stdout + result.stderr
    return result.returncode == 0 and not any(name in output for name in names)


def _shipped_units() -> dict[str, str]:
    units = {
        name: unit_path(name).read_text(encoding="utf-8")
        for name in (
            "wildwatch-edge.service",
            "wildwatch-central.service",
            "wildwatch-report.service",
            "wildwatch-report.timer",
        )
    }
    units["tmp.mount"] = (PROVISION / "files" / "tmp.mount").read_text(encoding="utf-8")
    return units


def test_edge_unit_is_watched_and_reboots_a_failing_node() -> None:
    """Type=notify with a watchdog the node pets (edge/watchdog.py); a start limit that reboots."""
    unit = _unit("wildwatch-edge.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "120"
    assert service["TimeoutStartSec"] == "300"  # model load on a Pi 4 takes up to a minute
    assert service["Restart"] == "always"
    start_limit = unit["Unit"]
    assert start_limit["StartLimitAction"] == "reboot"
    assert int(start_limit["StartLimitBurst"]) >= 3
    # the limit must be reachable: Burst restarts (RestartSec apart) fit in the interval
    assert int(start_limit["StartLimitBurst"]) * int(service["RestartSec"]) < int(
        start_limit["StartLimitIntervalSec"]
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_shipped_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = _shipped_units()
    result = _verify_root(tmp_path, units)
    assert _verified(result, list(units)), result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Type=notify", "Type=notfy"),  # a misspelt value: verify warns and exits 0
        ("WatchdogSec=120", "WatchdogSecs=120"),  # a misspelt key
        ("ExecStart=/opt/wildwatch/.venv/bin/wildwatch", "ExecStart=wildwatch"),  # not absolute
    ],
)
def test_verify_check_fails_on_a_broken_edge_unit(tmp_path: Path, old: str, new: str) -> None:
    """The check above is honest: the same check on a broken copy of the edge unit fails."""
    text = unit_path("wildwatch-edge.service").read_text(encoding="utf-8")
    assert old in text
    result = _verify_root(tmp_path, {"wildwatch-edge.service": text.replace(old, new)})
    assert not _verified(result, ["wildwatch-edge.service"])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="no shellcheck")
def test_provisioning_scripts_are_shellcheck_clean() -> None:
    scripts = [PROVISION / "pi-setup.sh", REPO / ".ci" / "provision"]
    result = subprocess.run(
        ["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_pi_setup_refuses_before_touching_anything(tmp_path: Path) -> None:
    """--help works anywhere; a bad option or a non-root user stops the script at once."""
    script = str(PROVISION / "pi-setup.sh")
    shown = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0
    for option in ("--data-dir", "--allow-root-fs", "--source", "--models", "--config"):
        assert option in shown.stdout
    for option in ("--central", "--modem", "--overlay"):
        assert option in shown.stdout
    bad = subprocess.run(
        ["bash", script, "--no-such-option"], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "unknown option" in bad.stderr


@pytest.mark.skipif(shutil.which("visudo") is None, reason="no visudo")
def test_sudoers_drop_in_parses_and_allows_exactly_two_commands() -> None:
    sudoers = PROVISION / "files" / "sudoers-wildwatch"
    checked = subprocess.run(["visudo", "-cqf", str(sudoers)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    rules = [line for line in sudoers.read_text().splitlines() if line and line[0] != "#"]
    assert rules == [
        "wildwatch ALL=(root) NOPASSWD: /usr/bin/mmcli -m any --reset, /usr/bin/systemctl reboot"
    ]


def test_chrony_snippets_make_central_the_clock() -> None:
    node = (REPO / "hardware" / "chrony" / "wildwatch-node.conf").read_text(encoding="utf-8")
    directives = [line for line in node.splitlines() if line and line[0] != "#"]
    assert directives == ["server @CENTRAL@ iburst prefer", "makestep 1 -1"]
    central = (REPO / "hardware" / "chrony" / "wildwatch-central.conf").read_text(encoding="utf-8")
    assert "local stratum 8" in central.splitlines()
    assert any(line.startswith("allow ") for line in central.splitlines())
