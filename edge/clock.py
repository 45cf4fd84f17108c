"""The node's clock offset from its time source, as chrony measures it, for the heartbeat.

A node has no internet NTP: chrony on the node takes the central server as its time source.
Capture times come from the media itself; the offset tells the station how far the node's own
clock (log lines, heartbeats, `sent_at`) may be off.
"""

from __future__ import annotations

import logging
import subprocess

log = logging.getLogger(__name__)

# `chronyc -c tracking` prints one CSV line (chrony 4.x, client.c): reference ID (hex), reference
# name or address, stratum, reference time (epoch s), system time (s), last offset (s), RMS
# offset (s), frequency (ppm), residual frequency (ppm), skew (ppm), root delay (s), root
# dispersion (s), update interval (s), leap status.
_REF_ID, _SYSTEM_TIME, _LEAP_STATUS = 0, 4, 13
_FIELDS = 14
_UNSYNCHRONISED_REF_ID = 0


_last_reason: str | None = None  # last reason logged: a heartbeat a minute must not repeat it


def _unknown(reason: str) -> None:
    """Log why the offset is unknown: a warning when the reason is new, debug while it lasts."""
    global _last_reason
    level = logging.DEBUG if reason == _last_reason else logging.WARNING
    _last_reason = reason
    log.log(level, "clock offset unknown: %s", reason)


def clock_offset_ms(chronyc: str = "chronyc", timeout_s: float = 2.0) -> float | None:
    """The system clock minus chrony's NTP time, in milliseconds: positive = the node's clock is
    ahead of its time source, negative = behind.

    chrony's own "System time" figure has the opposite sign (in the CSV a positive value is
    "seconds slow of NTP time"), so it is negated here. Returns None, never raises, when
    chronyc is missing, fails or times out, when its output is not what chrony 4 prints, or
    when chrony is not synchronised (reference ID 0 or leap status "Not synchronised"): an
    offset against no source means nothing. `chronyc` may carry options after the program
    (e.g. "chronyc -h /run/chrony/chronyd.sock"); it is split on white space. `-n` keeps chronyc
    from resolving the source's name over a link that may be down. Nothing is cached.
    """
    argv = [*chronyc.split(), "-n", "-c", "tracking"]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            text=True,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        _unknown(f"{argv[0]} did not answer within {timeout_s:.1f} s")
        return None
    except OSError as exc:
        _unknown(f"cannot run {argv[0]}: {exc}")
        return None
    if done.returncode != 0:
        first = (done.stderr.strip() or done.stdout.strip()).splitlines()[:1]
        _unknown(f"{argv[0]} exited {done.returncode}" + (f": {first[0]}" if first else ""))
        return None
    return parse_tracking_csv(done.stdout)


def parse_tracking_csv(output: str) -> float | None:
    """The offset in ms (system clock minus NTP time) from `chronyc -c tracking` output, or None
    when it is unsynchronised or not chrony's CSV line."""
    lines = output.strip().splitlines()
    fields = lines[0].split(",") if len(lines) == 1 else []
    if len(fields) != _FIELDS:
        _unknown(f"unexpected chronyc output {output[:200]!r}")
        return None
    try:
        ref_id = int(fields[_REF_ID], 16)
        seconds_slow = float(fields[_SYSTEM_TIME])
    except ValueError:
        _unknown(f"unexpected chronyc output {output[:200]!r}")
        return None
    if ref_id == _UNSYNCHRONISED_REF_ID or fields[_LEAP_STATUS] == "Not synchronised":
        return None
    offset_ms = -seconds_slow * 1000.0
    if offset_ms != offset_ms or abs(offset_ms) == float("inf"):
        return None  # nan or inf: the heartbeat refuses them
    return offset_ms
