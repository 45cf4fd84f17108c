"""The heartbeat's clock offset, read from real chrony daemons on loopback.

Two chronyd run per test with their own config, pid file and command socket: a "central" that
serves its local clock (`local stratum 8`) on an unprivileged port, and a "node" that takes it
as its only source. Both run with `-x`, so neither touches this machine's clock. The node's
`server ... offset` option makes chrony believe the node's clock is off by a known amount, which
pins the sign down against chrony's own words ("seconds fast/slow of NTP time").
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock import clock_offset_ms, parse_tracking_csv
from tests.helpers import free_port, wait_for

# chronyd lives in /usr/sbin, which a non-root PATH may lack.
CHRONYD = shutil.which("chronyd", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
CHRONYC = shutil.which("chronyc")

needs_chrony = pytest.mark.skipif(
    CHRONYD is None or CHRONYC is None,
    reason="chrony is not installed (CI installs it with apt-get install chrony)",
)


class Chronyd:
    """One chronyd in the foreground (-d) that never adjusts the system clock (-x)."""

    def __init__(self, workdir: Path, name: str, conf: str) -> None:
        self.sock = workdir / f"{name}.sock"
        self.conf = workdir / f"{name}.conf"
        self.log = workdir / f"{name}.log"
        self.conf.write_text(
            f"cmdport 0\nbindcmdaddress {self.sock}\npidfile {workdir / name}.pid\n" + conf
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def chronyc(self) -> str:
        """The `chronyc` argument that talks to this daemon's own command socket."""
        return f"{CHRONYC} -h {self.sock}"

    def start(self) -> None:
        assert CHRONYD is not None
        # As root chronyd drops to the _chrony user, who cannot use a private test folder.
        user = ["-u", "root"] if os.geteuid() == 0 else []
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [CHRONYD, "-d", "-x", *user, "-f", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        if not wait_for(self.sock.exists, 10.0):
            self.stop()
            raise RuntimeError(f"chronyd did not open {self.sock}: {self.log.read_text()}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


@pytest.fixture()
def chrony_dir() -> Iterator[Path]:
    """A short private folder: chronyd wants its socket's folder closed to others (0700), and a
    Unix socket path must stay under 108 bytes, which pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="ww-chrony-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pair(workdir: Path, offset_s: float = 0.0) -> tuple[Chronyd, Chronyd]:
    port = free_port()  # a TCP port free now; chrony serves NTP on the UDP port of that number
    central = Chronyd(workdir, "central", f"port {port}\nlocal stratum 8\nallow 127.0.0.1\n")
    node = Chronyd(
        workdir,
        "node",
        f"port 0\nserver 127.0.0.1 port {port} iburst minpoll -6 maxpoll -5 offset {offset_s}\n",
    )
    return central, node


def _chrony_says_ms(node: Chronyd) -> float:
    """chrony's own human-readable verdict, as system clock minus NTP time in ms."""
    out = subprocess.run(
        [*node.chronyc.split(), "-n", "tracking"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"System time\s*:\s*([0-9.]+) seconds (fast|slow) of NTP time", out)
    assert match, out
    value = float(match.group(1)) * 1000.0
    return value if match.group(2) == "fast" else -value


def _synced_offset(node: Chronyd) -> float:
    """The node's offset once its chronyd has synchronised (within 30 s)."""
    assert wait_for(lambda: clock_offset_ms(node.chronyc) is not None, 30.0, 0.2), (
        node.log.read_text()
    )
    offset = clock_offset_ms(node.chronyc)
    assert offset is not None
    return offset


@needs_chrony
def test_none_before_sync_then_small_offset_then_none_without_chronyd(chrony_dir: Path) -> None:
    central, node = _pair(chrony_dir)
    node.start()
    try:
        # The node's chronyd answers but has no source yet: not synchronised, no offset.
        assert clock_offset_ms(node.chronyc) is None
        central.start()
        try:
            assert abs(_synced_offset(node)) < 50.0  # the same machine's clock over loopback
        finally:
            central.stop()
    finally:
        node.stop()
    # chronyc is there, its daemon is gone: no offset, no exception.
    assert clock_offset_ms(node.chronyc) is None


@needs_chrony
@pytest.mark.parametrize("source_offset_s", [0.25, -0.25])
def test_sign_is_node_clock_minus_its_source(chrony_dir: Path, source_offset_s: float) -> None:
    """`offset 0.25` makes chrony find the node's clock 250 ms slow: the heartbeat says -250."""
    central, node = _pair(chrony_dir, source_offset_s)
    central.start()
    node.start()
    try:
        offset = _synced_offset(node)
        assert offset == pytest.approx(-source_offset_s * 1000.0, abs=20.0)
        assert offset == pytest.approx(_chrony_says_ms(node), abs=20.0)
    finally:
        node.stop()
        central.stop()


def test_missing_chronyc_is_none(tmp_path: Path) -> None:
    assert clock_offset_ms(str(tmp_path / "no-such-chronyc")) is None


def test_chronyc_that_hangs_is_none_within_the_timeout(tmp_path: Path) -> None:
    hangs = tmp_path / "chronyc"
    hangs.write_text("#!/bin/sh\nexec sleep 30\n")
    hangs.chmod(0o755)
    assert clock_offset_ms(str(hangs), timeout_s=0.3) is None


def test_failing_chronyc_is_none(tmp_path: Path) -> None:
    fails = tmp_path / "chronyc"
    fails.write_text("#!/bin/sh\necho '506 Cannot talk to daemon' >&2\nexit 1\n")
    fails.chmod(0o755)
    assert clock_offset_ms(str(fails)) is None


# Lines printed by chrony 4.3's `chronyc -c tracking` on this project's machine (Debian 12),
# recorded while writing this test: synchronised 1.187 µs fast, synchronised 250 ms slow (a
# source with `offset 0.25`), and a daemon that has no source yet.
SYNCED_FAST = (
    "7F000001,127.0.0.1,9,1796324087.804683227,-0.000001187,0.000000001,0.000000036,"
    "-0.045,0.000,0.164,0.000005319,0.000000943,0.0,Normal\n"
)
SYNCED_SLOW = (
    "7F000001,127.0.0.1,9,1796324144.985267629,0.249998614,0.000000098,0.000000099,"
    "-0.850,0.052,2.396,0.000005767,0.000000974,0.0,Normal\n"
)
UNSYNCHRONISED = (
    "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
    "1.000000000,1.000000000,0.0,Not synchronised\n"
)


def test_parser_on_recorded_output() -> None:
    assert parse_tracking_csv(SYNCED_FAST) == pytest.approx(0.001187)
    assert parse_tracking_csv(SYNCED_SLOW) == pytest.approx(-249.998614)
    assert parse_tracking_csv(UNSYNCHRONISED) is None
    assert parse_tracking_csv(SYNCED_FAST.replace("Normal", "Not synchronised")) is None
    assert parse_tracking_csv("") is None
    assert parse_tracking_csv("506 Cannot talk to daemon\n") is None
    assert parse_tracking_csv(SYNCED_FAST.replace("-0.000001187", "nan")) is None


def test_a_lasting_reason_is_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Asked every heartbeat (a minute), the same reason is a warning once, then debug."""
    missing = str(tmp_path / "no-chronyc")
    with caplog.at_level(logging.DEBUG, logger="edge.clock"):
        for _ in range(3):
            assert clock_offset_ms(missing) is None
    levels = [r.levelno for r in caplog.records if "cannot run" in r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
