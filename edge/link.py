"""The node's link watch: how long the broker has been out of reach, and what was done about it.

A node's uplink is a 4G dongle. When the broker stays unreachable, the watch first resets the
modem (a configured command: ModemManager's `mmcli`, or `wildwatch edge modem-reset --hilink URL`
for a Huawei HiLink dongle, edge/modem.py)
and only when that did not bring the link back asks for a reboot of the Pi, at most once per
`min_reboot_interval_s`, measured across reboots: a central that is down must not put its
nodes into a reboot loop. Every step is logged and counted in the heartbeat (`LinkHealth`).

The counters, the last step and the time of the last reboot live in a small JSON file in the
node's data folder, written only when one of them changes (SD card writes matter) and atomically.

Why no separate network probe ("broker down, network up"): the only thing the node needs the
link for is the broker, and the two remedies are bounded anyway (a modem reset every
`modem_reset_every_s`, a reboot every `min_reboot_interval_s` at most), so a central outage costs
a few harmless modem resets and one reboot per interval. A probe would add a second target to
configure and to be wrong about (a firewall that answers, a captive portal).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.payloads import MAX_TEXT, LinkHealth, utc_now

log = logging.getLogger(__name__)

DAY_S = 86400.0


class LinkSettings(BaseModel):
    """How the link watch decides (node config, `link:` section)."""

    model_config = ConfigDict(extra="forbid")

    check_s: float = Field(
        30.0, ge=0.05, le=3600, description="seconds between two looks at the broker link"
    )
    modem_reset_after_s: float = Field(
        600.0,
        ge=0,
        le=7 * DAY_S,
        description="seconds offline before the modem reset command runs the first time",
    )
    modem_reset_command: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "argv that resets the modem, e.g. "
            '["sudo", "-n", "/usr/bin/mmcli", "-m", "any", "--reset"], or for a HiLink dongle '
            '["wildwatch", "edge", "modem-reset", "--hilink", "http://192.168.8.1/"]; exit 0 is '
            "success; null: no modem step"
        ),
    )
    modem_reset_every_s: float = Field(
        1800.0,
        ge=1,
        le=7 * DAY_S,
        description="seconds between two modem resets while the link stays down",
    )
    reboot_after_s: float | None = Field(
        None,
        ge=0,
        le=30 * DAY_S,
        description=(
            "seconds offline before a reboot is asked for (with a modem reset command, only "
            "after at least one modem reset in the same offline stretch); null (the default, "
            "so a node run on a workstation never reboots it): never reboot. The node.yaml "
            "of a provisioned Pi sets 3600"
        ),
    )
    reboot_command: list[str] = Field(
        default_factory=lambda: ["sudo", "-n", "/usr/bin/systemctl", "reboot"],
        min_length=1,
        description="argv that reboots the Pi",
    )
    min_reboot_interval_s: float = Field(
        6 * 3600.0,
        ge=0,
        le=30 * DAY_S,
        description=(
            "least seconds between two reboots the watch asks for, across reboots (wall clock, "
            "kept in the state file)"
        ),
    )
    command_timeout_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description="seconds a modem reset or reboot command may take before it is killed",
    )

    @model_validator(mode="after")
    def _reboot_after_modem_reset(self) -> LinkSettings:
        if (
            self.modem_reset_command is not None
            and self.reboot_after_s is not None
            and self.reboot_after_s < self.modem_reset_after_s
        ):
            raise ValueError(
                "reboot_after_s is shorter than modem_reset_after_s: the modem is reset first"
            )
        return self


class _State(BaseModel):
    """What survives a restart of the node (the state file)."""

    model_config = ConfigDict(extra="ignore")

    modem_resets: int = Field(0, ge=0)
    reboots: int = Field(0, ge=0)
    last_action: str | None = Field(None, max_length=MAX_TEXT)
    last_action_at: AwareDatetime | None = None
    last_reboot_at: AwareDatetime | None = None


class LinkWatch:
    """Watches `connected()` every `check_s` on a daemon thread named "link" and acts on it.

    `clock` is monotonic seconds (offline time, reset schedule); `wall_clock` an aware UTC
    datetime (last_action_at, and the reboot interval, which must hold across reboots). Both are
    for tests to drive; `check()` is one decision step and may be called directly.
    """

    def __init__(
        self,
        settings: LinkSettings,
        connected: Callable[[], bool],
        state_path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self._connected = connected
        self._state_path = state_path
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()  # the state, between check() and health()
        self._check_lock = threading.Lock()  # one check() at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = self._load()
        # The current offline stretch (monotonic), and what was done in it.
        self._offline_since: float | None = None
        self._last_outage_s: float | None = None  # the latest outage that ended, since start
        self._last_modem_reset: float | None = None
        self._stretch_resets = 0
        self._stretch_reboots = 0
        self._reboot_held_logged = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the "link" thread: a check every check_s, the first after check_s (the MQTT
        client is still connecting at start; an outage at boot is counted from that check)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; a command it is running is waited for (up to its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.command_timeout_s + 10)
            self._thread = None

    @property
    def alive(self) -> bool:
        """True while the "link" thread runs (the systemd watchdog stops pinging otherwise)."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.check_s):
            try:
                self.check()
            except Exception:
                log.exception(
                    "link watch: a check failed; trying again in %.0f s", self.settings.check_s
                )

    # -- the decision ----------------------------------------------------------------------------
    def check(self) -> None:
        """One look at the link and at most one step: a modem reset or a reboot. A reboot that
        failed is asked for again once min_reboot_interval_s has passed, as one that did not
        bring the node down."""
        with self._check_lock:
            self._check()

    def _check(self) -> None:
        s = self.settings
        now = self._clock()
        if self._connected():
            if self._offline_since is not None:
                self._back(now - self._offline_since)
            return
        if self._offline_since is None:
            self._offline_since = now
            log.warning("link watch: the broker is not reachable; counting offline time")
            return
        offline = now - self._offline_since
        # The reboot first when both are due: the modem resets already had their chance.
        if (
            s.reboot_after_s is not None
            and offline >= s.reboot_after_s
            and (s.modem_reset_command is None or self._stretch_resets > 0)
            and self._reboot_allowed()
        ):
            self._stretch_reboots += 1
            if self._act("reboot", s.reboot_command, offline, "reboots"):
                # The system is going down, the modem with it: no modem reset in the meantime.
                self._last_modem_reset = now
            return
        if (
            s.modem_reset_command is not None
            and offline >= s.modem_reset_after_s
            and (
                self._last_modem_reset is None
                or now - self._last_modem_reset >= s.modem_reset_every_s
            )
        ):
            self._last_modem_reset = now
            self._stretch_resets += 1
            self._act("modem reset", s.modem_reset_command, offline, "modem_resets")

    def _reboot_allowed(self) -> bool:
        last = self._state.last_reboot_at
        if last is None:
            return True
        now = self._wall()
        since = (now - last).total_seconds()
        if since < 0:
            # The wall clock went back (a Pi without RTC boots with an old time): the stored
            # time cannot be measured from, so the interval starts again from now.
            log.warning(
                "link watch: last reboot at %s is in the future of the clock (%s); "
                "counting the reboot interval from now",
                last.isoformat(),
                now.isoformat(),
            )
            self._update(last_reboot_at=now)
            return False
        if since >= self.settings.min_reboot_interval_s:
            return True
        if not self._reboot_held_logged:
            self._reboot_held_logged = True
            log.error(
                "link watch: a reboot is due but the last one was %.0f s ago; "
                "none before %.0f s have passed",
                since,
                self.settings.min_reboot_interval_s,
            )
        return False

    def _back(self, offline: float) -> None:
        steps = self._stretch_resets + self._stretch_reboots
        log.warning(
            "link watch: the broker is reachable again after %.0f s offline (%d step(s) taken)",
            offline,
            steps,
        )
        if steps:
            # Worth the heartbeat (and a state write) only when the watch did something.
            self._update(
                last_action=f"link back after {offline:.0f} s offline "
                f"({self._stretch_resets} modem reset(s), {self._stretch_reboots} reboot(s))",
                last_action_at=self._wall(),
            )
        self._offline_since = None
        self._last_outage_s = round(offline, 1)
        self._last_modem_reset = None
        self._stretch_resets = 0
        self._stretch_reboots = 0
        self._reboot_held_logged = False

    def _act(self, what: str, argv: list[str], offline: float, counter: str) -> bool:
        """Run one step, count it and record its outcome; True when the command exited 0."""
        log.warning("link watch: %.0f s offline, running %s: %s", offline, what, argv)
        started = self._wall()
        if counter == "reboots" and not self._update(
            # Counted and stamped before it runs: a reboot that succeeds may end this process
            # before the answer comes back.
            reboots=self._state.reboots + 1,
            last_reboot_at=started,
            last_action=f"{what}: running (offline {offline:.0f} s)",
            last_action_at=started,
        ):
            # Unsaved, the reboot time would not hold across the reboot: an outage of the
            # central would reboot the node every reboot_after_s. Held for the interval instead.
            text = f"reboot skipped: its time cannot be saved in {self._state_path}"
            log.error("link watch: %s", text)
            self._update(reboots=self._state.reboots - 1, last_action=text, last_action_at=started)
            return False
        outcome, ok = run_command(argv, self.settings.command_timeout_s)
        text = f"{what}: {outcome}" if ok else f"{what} failed: {outcome}"
        (log.warning if ok else log.error)("link watch: %s", text)
        changes: dict[str, object] = {
            "last_action": f"{text} (offline {offline:.0f} s)",
            "last_action_at": self._wall(),
        }
        if counter == "modem_resets":
            changes["modem_resets"] = self._state.modem_resets + 1
        self._update(**changes)
        return ok

    # -- heartbeat -------------------------------------------------------------------------------
    def health(self) -> LinkHealth:
        """The link as the heartbeat reports it."""
        with self._lock:
            state = self._state
            since = self._offline_since
        # connected now: an outage the next check has not closed yet is over
        offline = 0.0 if since is None or self._connected() else max(0.0, self._clock() - since)
        return LinkHealth(
            offline_s=offline,
            last_outage_s=self._last_outage_s,
            modem_resets=state.modem_resets,
            reboots=state.reboots,
            last_action=state.last_action,
            last_action_at=state.last_action_at,
        )

    # -- the state file --------------------------------------------------------------------------
    def _load(self) -> _State:
        try:
            raw = self._state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            log.info("link watch: no state file at %s; counters start from zero", self._state_path)
            return _State()
        except OSError as exc:
            log.warning(
                "link watch: cannot read %s (%s); counters start from zero", self._state_path, exc
            )
            return _State()
        try:
            return _State.model_validate_json(raw)
        except ValidationError as exc:
            log.warning(
                "link watch: state file %s is corrupt (%s); counters start from zero",
                self._state_path,
                exc.errors()[0].get("msg", "invalid"),
            )
            return _State()

    def _update(self, **changes: object) -> bool:
        """Apply `changes` to the state and save it; False when it could not be saved (the
        state in memory and in the heartbeat is updated all the same)."""
        action = changes.get("last_action")
        if isinstance(action, str):
            changes["last_action"] = action[:MAX_TEXT]  # the heartbeat's bound
        with self._lock:
            self._state = self._state.model_copy(update=changes)
            state = self._state
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as f:
                f.write(state.model_dump_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state_path)
            return True
        except OSError as exc:
            # The counters stay right in memory and in the heartbeat; only a restart loses them.
            log.error("link watch: cannot write %s: %s", self._state_path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False


def run_command(argv: list[str], timeout_s: float) -> tuple[str, bool]:
    """Run a recovery command; returns its outcome as text and whether it exited 0.

    The command runs in its own session so that a timeout kills what it started too (a shell
    script's children would otherwise hold its stderr open). Never raises for the command's sake.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror or exc}", False
    try:
        _out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        code = proc.poll()
        _kill(proc)
        if code is not None:
            # It exited in time but left a child holding its stderr open.
            return _exit_text(code, b""), code == 0
        return f"timed out after {timeout_s:g} s", False
    return _exit_text(proc.returncode, err), proc.returncode == 0


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        # PermissionError: sudo's root children; the sudo process itself is ours to kill.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


def _exit_text(code: int, stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    first = lines[0].strip() if lines else ""
    text = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
    return f"{text}: {first}" if first else text
