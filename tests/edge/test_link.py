"""The link watch against a real broker link and real recovery commands.

The modem reset and reboot commands are small shell scripts that write a line to a file per run
(and exit 0, exit 3 or hang as a test needs). Offline time is driven by a FakeClock, so hours of
4G outage pass in a moment; the wall clock (last_action_at, the reboot interval that must hold
across reboots) moves with it. One test walks the whole story on a real mosquitto that is killed
and started again under a real MqttLink.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from broker.client import BrokerAddress, MqttLink
from broker.payloads import MAX_TEXT
from edge.link import LinkSettings, LinkWatch
from tests.helpers import FakeClock, MosquittoServer, free_port, wait_for

HOUR = 3600.0
EPOCH = datetime(2026, 6, 1, tzinfo=UTC)


class Clocks:
    """A monotonic FakeClock and a wall clock that moves with it."""

    def __init__(self, wall_start: datetime = EPOCH) -> None:
        self.mono = FakeClock()
        self._wall_start = wall_start
        self._mono_start = self.mono.now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self.mono.now - self._mono_start)

    def advance(self, seconds: float) -> None:
        self.mono.advance(seconds)

    def watch(self, link: LinkSettings, connected: Callable[[], bool], state: Path) -> LinkWatch:
        """A LinkWatch on these clocks."""
        return LinkWatch(link, connected, state, clock=self.mono, wall_clock=self.wall)


class Script:
    """A real command: appends a line to its own log per run, then does `then` (shell)."""

    def __init__(self, folder: Path, name: str, then: str = "exit 0") -> None:
        self.path = folder / name
        self.runs_file = folder / f"{name}.runs"
        self.path.write_text(f'#!/bin/sh\necho run >> "{self.runs_file}"\n{then}\n')
        self.path.chmod(0o755)

    @property
    def argv(self) -> list[str]:
        return [str(self.path)]

    @property
    def runs(self) -> int:
        return len(self.runs_file.read_text().splitlines()) if self.runs_file.exists() else 0


class Link:
    """A link state a test sets by hand, for the cases where the broker is beside the point."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self) -> bool:
        return self.up


def settings(modem: Script | None, reboot: Script, **overrides: object) -> LinkSettings:
    values: dict[str, object] = {
        "check_s": 30,
        "modem_reset_after_s": 600,
        "modem_reset_command": modem.argv if modem else None,
        "modem_reset_every_s": 1800,
        "reboot_after_s": HOUR,
        "reboot_command": reboot.argv,
        "min_reboot_interval_s": 6 * HOUR,
        "command_timeout_s": 5,
    }
    values.update(overrides)
    return LinkSettings.model_validate(values)


def step(watch: LinkWatch, clocks: Clocks, seconds: float) -> None:
    """Let `seconds` pass and take one check."""
    clocks.advance(seconds)
    watch.check()


def test_outage_on_a_real_broker_modem_reset_then_one_reboot_then_recovery(tmp_path: Path) -> None:
    (tmp_path / "mosquitto").mkdir()
    broker = MosquittoServer(tmp_path / "mosquitto", free_port())  # ours, to kill and restart
    broker.start()
    modem, reboot = Script(tmp_path, "modem-reset"), Script(tmp_path, "reboot")
    state = tmp_path / "data" / "link.json"
    clocks = Clocks()
    mqtt = MqttLink(
        f"link-watch-{uuid.uuid4().hex[:8]}",
        BrokerAddress("127.0.0.1", broker.port, keepalive_s=5),
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )
    mqtt.start()
    try:
        assert mqtt.wait_connected(10)
        watch = clocks.watch(settings(modem, reboot), lambda: mqtt.connected, state)
        watch.check()
        assert watch.health().offline_s == 0
        assert not state.exists()  # nothing happened, nothing written

        broker.stop()
        assert wait_for(lambda: not mqtt.connected, 10)
        watch.check()  # the offline stretch starts here
        step(watch, clocks, 300)
        assert watch.health().offline_s == 300
        assert modem.runs == 0 and not state.exists()

        step(watch, clocks, 300)  # 600 s offline: the modem is reset
        assert modem.runs == 1 and reboot.runs == 0
        health = watch.health()
        assert health.modem_resets == 1 and health.reboots == 0
        assert health.last_action == "modem reset: exit 0 (offline 600 s)"
        assert health.last_action_at == EPOCH + timedelta(seconds=600)
        step(watch, clocks, 60)
        assert modem.runs == 1  # once, not at every check

        step(watch, clocks, HOUR - 660)  # an hour offline, a modem reset tried: reboot
        assert reboot.runs == 1 and modem.runs == 1
        health = watch.health()
        assert health.reboots == 1 and health.offline_s == HOUR
        assert health.last_action == f"reboot: exit 0 (offline {HOUR:.0f} s)"
        step(watch, clocks, 60)
        assert reboot.runs == 1  # the system is going down; not twice

        # The Pi came back up (a new process, a new monotonic clock) and the broker is still
        # down: the counters are the file's; the modem is reset again after 600 s, but a
        # second reboot waits out min_reboot_interval_s, measured on the wall clock.
        wall_after_reboot = clocks.wall() + timedelta(minutes=2)
        clocks = Clocks(wall_after_reboot)
        watch = clocks.watch(settings(modem, reboot), lambda: mqtt.connected, state)
        assert (watch.health().modem_resets, watch.health().reboots) == (1, 1)
        assert watch.health().last_action == f"reboot: exit 0 (offline {HOUR:.0f} s)"
        watch.check()
        for _ in range(int(2 * HOUR / 30)):
            step(watch, clocks, 30)
        assert modem.runs == 1 + 4  # at 600 s, then every 1800 s: 2400, 4200, 6000
        assert reboot.runs == 1
        assert watch.health().offline_s == 2 * HOUR
        for _ in range(int(5 * HOUR / 300)):
            step(watch, clocks, 300)
        assert reboot.runs == 2  # six hours after the first reboot, not before
        assert watch.health().reboots == 2

        # The broker is back: the stretch ends, its length is the last word.
        resets_before = modem.runs
        broker.start()
        assert mqtt.wait_connected(15)
        step(watch, clocks, 30)
        health = watch.health()
        assert health.offline_s == 0 and health.last_outage_s == 25230
        assert health.last_action is not None
        assert health.last_action.startswith("link back after 25230 s offline")
        on_disk = json.loads(state.read_text())
        assert on_disk["modem_resets"] == health.modem_resets == resets_before
        assert on_disk["reboots"] == 2
        assert not state.with_name(state.name + ".tmp").exists()

        # A new outage is a new stretch: 600 s again before the modem is reset.
        broker.stop()
        assert wait_for(lambda: not mqtt.connected, 10)
        watch.check()
        step(watch, clocks, 599)
        assert modem.runs == resets_before
        step(watch, clocks, 1)
        assert modem.runs == resets_before + 1
    finally:
        mqtt.stop()
        broker.stop()


def test_thread_survives_a_missing_command_and_counts_it(tmp_path: Path) -> None:
    """Real time, real thread: a modem command that does not exist is an error, counted."""
    reboot = Script(tmp_path, "reboot")
    link = Link()
    watch = LinkWatch(
        settings(
            None,
            reboot,
            check_s=0.05,
            modem_reset_after_s=0.1,
            modem_reset_every_s=1,
            modem_reset_command=[str(tmp_path / "no-such-mmcli"), "--reset"],
            reboot_after_s=None,
        ),
        link,
        tmp_path / "link.json",
    )
    watch.start()
    try:
        assert wait_for(lambda: watch.health().modem_resets >= 1, 10)
        assert watch.alive
        health = watch.health()
        assert health.last_action is not None
        assert health.last_action.startswith(
            f"modem reset failed: cannot run {tmp_path / 'no-such-mmcli'}: No such file"
        )
        assert wait_for(lambda: watch.health().modem_resets >= 2, 10)  # every 1 s, still alive
        assert watch.alive
        link.up = True
        assert wait_for(lambda: watch.health().offline_s == 0, 10)
        assert reboot.runs == 0  # reboot_after_s None: never
    finally:
        watch.stop()
    assert not watch.alive


def test_failed_and_hanging_commands_are_reported(tmp_path: Path) -> None:
    fails = Script(tmp_path, "modem-fails", "echo 'error: no modems were found' >&2\nexit 3")
    # The script's child holds stderr: the timeout must kill the whole group, not wait for it.
    hangs = Script(tmp_path, "reboot-hangs", "sleep 30 &\nwait")
    clocks = Clocks()
    watch = clocks.watch(
        settings(fails, hangs, command_timeout_s=0.5), Link(), tmp_path / "link.json"
    )
    watch.check()
    step(watch, clocks, 600)
    assert fails.runs == 1
    assert watch.health().last_action == (
        "modem reset failed: exit 3: error: no modems were found (offline 600 s)"
    )
    started = time.monotonic()
    step(watch, clocks, HOUR - 600)
    assert time.monotonic() - started < 5
    assert hangs.runs == 1
    health = watch.health()
    assert health.last_action == f"reboot failed: timed out after 0.5 s (offline {HOUR:.0f} s)"
    assert (health.modem_resets, health.reboots) == (1, 1)
    # A failed reboot is asked for again only after min_reboot_interval_s.
    for _ in range(11):
        step(watch, clocks, 1800)
    assert hangs.runs == 1
    step(watch, clocks, 1800)
    assert hangs.runs == 2


def test_without_a_modem_command_reboot_comes_at_reboot_after(tmp_path: Path) -> None:
    reboot = Script(tmp_path, "reboot")
    clocks = Clocks()
    watch = clocks.watch(settings(None, reboot), Link(), tmp_path / "link.json")
    watch.check()
    step(watch, clocks, HOUR - 1)
    assert reboot.runs == 0
    step(watch, clocks, 1)
    assert reboot.runs == 1
    assert watch.health().modem_resets == 0


def test_corrupt_state_starts_from_zero_and_a_clock_gone_back_holds_the_reboot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reboot = Script(tmp_path, "reboot")
    state = tmp_path / "link.json"
    state.write_text("{not json")
    clocks = Clocks()
    watch = clocks.watch(settings(None, reboot), Link(), state)
    assert "corrupt" in caplog.text
    assert watch.health().model_dump(exclude={"last_action_at"}) == {
        "offline_s": 0.0,
        "last_outage_s": None,
        "modem_resets": 0,
        "reboots": 0,
        "last_action": None,
    }
    # A reboot recorded a day in the wall clock's future (a Pi without RTC booted with an old
    # time): not measurable, so the interval starts again from now instead of never ending.
    future = EPOCH + timedelta(days=1)
    state.write_text(json.dumps({"reboots": 4, "last_reboot_at": future.isoformat()}))
    watch = clocks.watch(settings(None, reboot), Link(), state)
    assert watch.health().reboots == 4
    watch.check()
    step(watch, clocks, HOUR)
    assert reboot.runs == 0
    assert json.loads(state.read_text())["last_reboot_at"].startswith("2026-06-01T01:00:00")
    step(watch, clocks, 6 * HOUR)
    assert reboot.runs == 1
    assert watch.health().reboots == 5


def test_no_reboot_when_its_time_cannot_be_saved(tmp_path: Path) -> None:
    """An unsaved reboot time would not hold across the reboot: a reboot loop. Held instead."""
    reboot = Script(tmp_path, "reboot")
    (tmp_path / "not-a-folder").write_text("")
    clocks = Clocks()
    watch = clocks.watch(settings(None, reboot), Link(), tmp_path / "not-a-folder" / "link.json")
    watch.check()
    step(watch, clocks, HOUR)
    assert reboot.runs == 0
    health = watch.health()
    assert health.reboots == 0
    assert health.last_action is not None
    assert health.last_action.startswith("reboot skipped: its time cannot be saved")
    step(watch, clocks, 6 * HOUR - 1)
    assert reboot.runs == 0  # asked again only once the interval has passed


def test_a_long_error_is_cut_to_the_heartbeat_bound(tmp_path: Path) -> None:
    chatty = Script(tmp_path, "modem-chatty", f"echo {'x' * 900} >&2\nexit 1")
    clocks = Clocks()
    watch = clocks.watch(settings(chatty, chatty), Link(), tmp_path / "link.json")
    watch.check()
    step(watch, clocks, 600)
    action = watch.health().last_action
    assert action is not None and len(action) == MAX_TEXT
    assert action.startswith("modem reset failed: exit 1: xxx")
    reloaded = clocks.watch(settings(chatty, chatty), Link(), tmp_path / "link.json")
    assert reloaded.health().last_action == action


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="modem_reset_after_s"):
        LinkSettings(modem_reset_command=["true"], modem_reset_after_s=600, reboot_after_s=300)
    with pytest.raises(ValidationError, match="extra"):
        LinkSettings.model_validate({"reboot_after": 60})
    with pytest.raises(ValidationError):
        LinkSettings(modem_reset_command=[])
    default = LinkSettings()
    assert default.reboot_command == ["sudo", "-n", "/usr/bin/systemctl", "reboot"]
    # a node run on a workstation never reboots it
    assert default.modem_reset_command is None and default.reboot_after_s is None
    for name, field in LinkSettings.model_fields.items():
        assert field.description, name


def test_a_heartbeat_sent_once_connected_reports_no_outage_in_progress(tmp_path: Path) -> None:
    """Heartbeats go out only when connected: one sent before the next check has closed the
    outage says 0 s offline, and the outage's length follows once a check has seen it end."""
    link, clocks = Link(), Clocks()
    watch = clocks.watch(settings(None, Script(tmp_path, "reboot")), link, tmp_path / "s.json")
    watch.check()  # starting up: not connected yet
    clocks.advance(12)
    assert watch.health().offline_s == 12
    link.up = True
    assert watch.health().offline_s == 0 and watch.health().last_outage_s is None
    step(watch, clocks, 3)
    assert watch.health().offline_s == 0 and watch.health().last_outage_s == 15
