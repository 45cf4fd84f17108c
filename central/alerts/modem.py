"""GSM/4G modem SMS provider: AT commands on a serial port, PDU mode, +CDS receipts, +CMTI replies.

For stations without internet: a USB modem (Quectel EC20/EC25, SIMCom SIM7600, Huawei ...) on
its AT port. Messages go as SMS-SUBMIT PDUs (3GPP TS 23.040) that this module encodes itself:
UCS-2 (UTF-16) for Chinese, the GSM 7-bit default alphabet when the text fits it, concatenated
parts with an 8-bit reference when long. The modem announces status reports (+CDS) and new
messages (+CMTI) unsolicited; one reader thread routes every line either to the command that
waits for it or to those handlers, so the two never get in each other's way.

Why not a library: `smspdudecoder` only decodes (no SMS-SUBMIT encoding, no status reports);
`python-gsmmodem-new` (last release 2021, untyped) encodes UCS-2 one code point per 16 bits, so
a character outside the BMP breaks it, has "`" where GSM 03.38 has "§" (0x5F), and ties the
concatenation reference to TP-MR. Otherwise its encoder and this one agree byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import random
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import serial
from pydantic import BaseModel, ConfigDict, Field

from central.alerts.pdu import (
    DeliverPdu,
    PduError,
    StatusReportPdu,
    SubmitPdu,
    decode_pdu,
    encode_submit,
    international_number,
)
from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    Reply,
    Submitted,
)

log = logging.getLogger(__name__)

PROVIDER_KEY = "modem"

# ---------------------------------------------------------------------------------------------
# Error codes (3GPP TS 27.005 section 3.2.5: 0-127 TS 24.011 RP causes, 128-255 TS 23.040
# TP-FCS, 300-511 ME errors, 512+ manufacturer specific). Retryable: the network or the modem
# is in a passing state; the rest are about this message, number, SIM or configuration.

CMS_ERRORS: dict[int, tuple[str, bool]] = {
    1: ("unassigned (unallocated) number", False),
    8: ("operator determined barring", False),
    10: ("call barred", False),
    21: ("short message transfer rejected", False),
    27: ("destination out of order", True),
    28: ("unidentified subscriber", False),
    29: ("facility rejected", False),
    30: ("unknown subscriber", False),
    38: ("network out of order", True),
    41: ("temporary failure", True),
    42: ("congestion", True),
    47: ("resources unavailable, unspecified", True),
    50: ("requested facility not subscribed", False),
    69: ("requested facility not implemented", False),
    96: ("invalid mandatory information", False),
    111: ("protocol error, unspecified", False),
    127: ("interworking, unspecified", True),
    192: ("SC busy", True),
    193: ("no SC subscription", False),
    194: ("SC system failure", True),
    195: ("invalid SME address", False),
    196: ("destination SME barred", False),
    208: ("(U)SIM SMS storage full", True),
    212: ("(U)SIM Application Toolkit busy", True),
    300: ("ME failure", True),
    301: ("SMS service of ME reserved", True),
    302: ("operation not allowed", False),
    303: ("operation not supported", False),
    304: ("invalid PDU mode parameter", False),
    310: ("(U)SIM not inserted", False),
    311: ("(U)SIM PIN required", False),
    314: ("(U)SIM busy", True),
    316: ("(U)SIM PUK required", False),
    322: ("memory full", True),
    330: ("SMSC address unknown", False),
    331: ("no network service", True),
    332: ("network timeout", True),
    500: ("unknown error", True),
}
_CMS_BY_TEXT = {text.lower(): code for code, (text, _) in CMS_ERRORS.items()}
# "network timeout": the modem gave up waiting for the network, which may have taken the message.
_UNCERTAIN_CMS = {332}


def cms_error(detail: str) -> ProviderError:
    """A ProviderError for '+CMS ERROR: <detail>' (numeric, or verbose text under AT+CMEE=2)."""
    detail = detail.strip()
    number = int(detail) if detail.isdigit() else _CMS_BY_TEXT.get(detail.lower())
    if number is None:  # a text this table does not know: most are states that pass
        return ProviderError(f"+CMS ERROR: {detail}", code=detail, retryable=True)
    text, retryable = CMS_ERRORS.get(number, ("manufacturer specific", number >= 512))
    return ProviderError(
        f"+CMS ERROR: {number} ({text})",
        code=str(number),
        retryable=retryable,
        uncertain=number in _UNCERTAIN_CMS,
    )


def delivery_state(status: int) -> DeliveryState:
    """TP-ST: 0x00-0x1F done (delivered), 0x20-0x3F still trying, 0x40 and up given up."""
    if status < 0x20:
        return DeliveryState.DELIVERED
    if status < 0x40:
        return DeliveryState.SUBMITTED
    return DeliveryState.FAILED


# ---------------------------------------------------------------------------------------------
# The provider


class ModemSettings(BaseModel):
    """A GSM/4G modem on a serial port, for stations without internet."""

    model_config = ConfigDict(extra="forbid")

    port: str = Field(
        min_length=1,
        description="The modem's AT port (e.g. /dev/ttyUSB2) or a pyserial URL",
    )
    baudrate: int = Field(default=115200, ge=1200, le=4_000_000, description="Serial speed")
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="How long an AT command may take to answer"
    )
    send_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=300,
        description="How long AT+CMGS may take once the PDU is given: the modem waits for the "
        "network (modules document up to 60-120 s); after that the send is uncertain",
    )
    sim_pin_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable that holds the SIM PIN, when the SIM "
        "asks for one (the PIN itself is never in the config)",
    )
    smsc: str | None = Field(
        default=None,
        pattern=r"^\+?\d{3,20}$",
        description="SMS centre number put in each PDU; None uses the one stored on the SIM",
    )
    min_signal: int = Field(
        default=5,
        ge=0,
        le=31,
        description="AT+CSQ rssi below which sending is refused as no_signal (99 = no signal "
        "at all); 5 is about -103 dBm, where sends start to fail",
    )
    status_reports: bool = Field(
        default=True, description="Ask the network for a status report (+CDS) per message"
    )
    reopen_every_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="When the modem is gone (unplugged, a USB reset, not there at start), how "
        "often the pager tries to open it again",
    )


_FINAL = ("OK", "ERROR", "COMMAND NOT SUPPORT")
_FINAL_PREFIXES = ("+CMS ERROR:", "+CME ERROR:")
# Unsolicited lines that are none of our business (registration, calls, module boot notices).
_IGNORED_URCS = (
    "RING",
    "NO CARRIER",
    "+CRING:",
    "+CLIP:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+QIND:",
    "^",
    "RDY",
    "SMS Ready",
    "Call Ready",
    "+CFUN:",
)
READ_POLL_S = 0.2  # the reader's read timeout: how soon it notices close() on ports without
# cancel_read (pyserial URLs); a plain serial port is woken by cancel_read at once.
MAX_RECEIPTS = 10_000  # kept for receipts(since=...); the alerting core reads them in minutes


class _Exchange:
    """One command in flight: the lines the modem answered, its prompt and final result."""

    def __init__(self, command: str, tracked: _Tracked | None = None) -> None:
        self.command = command
        self.tracked = tracked  # an AT+CMGS: the message its reference is filed under
        self.lines: list[str] = []
        self.prompt = False
        self.final: str | None = None


@dataclass(slots=True)
class _Tracked:
    """A submitted message (all its parts) whose status reports are awaited."""

    phone: str
    reference: str
    total: int
    mrs: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    done: bool = False  # its final receipt was given


@dataclass(slots=True)
class _Parts:
    """Parts of a concatenated incoming message, with where each is stored."""

    at: datetime | None
    texts: dict[int, str] = field(default_factory=dict)
    slots: list[tuple[str, int]] = field(default_factory=list)


# Jobs for the worker thread: read a stored message (memory, index) or a pushed PDU
# (kind "cds"/"cmt", hex, length).
_Job = tuple[str, str, int]


class ModemProvider:
    """SmsProvider over a modem's AT port (pyserial; a PTY path works as well as /dev/ttyUSB2).

    start() prepares the modem; submit() sends; status reports and replies arrive on their own
    and are kept for receipts() and replies(), and handed to `on_receipt` / `on_reply` (called
    on the provider's worker thread; keep them short) when given."""

    key: str = PROVIDER_KEY

    def __init__(
        self,
        settings: ModemSettings,
        *,
        on_receipt: Callable[[Receipt], None] | None = None,
        on_reply: Callable[[Reply], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self._on_receipt = on_receipt
        self._on_reply = on_reply
        self._clock = clock or (lambda: datetime.now(UTC))
        self._port: Any = None
        self._cmd_lock = threading.RLock()  # one command at a time, held across a whole send
        self._io = threading.Condition()  # guards _exchange and _broken, wakes waiters
        self._exchange: _Exchange | None = None
        self._broken: str | None = None
        self._state = threading.Lock()  # guards the tracked messages, receipts and replies
        self._tracked: dict[int, _Tracked] = {}
        self._receipts: deque[tuple[datetime, Receipt]] = deque(maxlen=MAX_RECEIPTS)
        self._replies: deque[Reply] = deque()
        self._parts: dict[tuple[str, int, int], _Parts] = {}
        self._concat_ref = random.randrange(256)
        self._memory: str | None = None  # the storage AT+CMGR/AT+CMGD read now ("SM", "ME")
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._buf = bytearray()
        self._pushed: tuple[str, int] | None = None  # +CDS/+CMT seen, its PDU line next
        self._late: _Tracked | None = None  # a send whose +CMGS did not come in time
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Open the port and prepare the modem; ProviderError (not retryable) when the SIM
        needs a PIN that is not configured or is refused."""
        if self._port is not None:
            return
        try:
            self._port = serial.serial_for_url(
                self.settings.port, baudrate=self.settings.baudrate, timeout=READ_POLL_S
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ProviderError(
                f"cannot open modem port {self.settings.port}: {exc}", code="port", retryable=True
            ) from exc
        self._stop.clear()
        self._broken = None
        self._jobs = queue.Queue()  # close() left its stop sentinel in the old one
        self._buf = bytearray()
        self._pushed = None
        self._threads = [
            threading.Thread(target=self._read_loop, name="modem-reader", daemon=True),
            threading.Thread(target=self._work_loop, name="modem-worker", daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            self._initialise()
        except BaseException:
            self.close()
            raise

    def _initialise(self) -> None:
        self._write(b"\x1b")  # leave a "> " prompt a previous run may have left open
        self._sync()
        self._command("ATE0")
        self._command("AT+CMEE=2")
        self._unlock_sim()
        self._command("AT+CMGF=0")
        try:
            # Phase 2 message service: +CDS and +CMT need no AT+CNMA acknowledgement.
            self._command("AT+CSMS=0")
        except ProviderError as exc:
            log.info("modem: AT+CSMS=0 refused (%s); keeping its default", exc)
        ds = 1 if self.settings.status_reports else 0
        self._command(f"AT+CNMI=2,1,0,{ds},0")
        rssi = self._signal()
        log.info("modem ready on %s, signal rssi %s", self.settings.port, rssi)
        self._read_all_stored()

    def _sync(self) -> None:
        """AT until the modem answers OK (it may be busy with a line noise or a boot)."""
        last: ProviderError | None = None
        for _ in range(3):
            try:
                self._command("AT", timeout_s=min(self.settings.timeout_s, 2.0))
                return
            except ProviderError as exc:
                last = exc
        assert last is not None
        raise ProviderError(f"modem does not answer AT: {last}", code="timeout", retryable=True)

    def _unlock_sim(self) -> None:
        state = self._sim_state()
        if state == "READY":
            return
        if state != "SIM PIN":
            raise ProviderError(f"SIM is locked ({state})", code="sim_locked", retryable=False)
        name = self.settings.sim_pin_env
        pin = os.environ.get(name, "") if name else ""
        if not pin:
            raise ProviderError(
                f"the SIM asks for its PIN and {'$' + name if name else 'sim_pin_env'} is not set",
                code="sim_pin",
                retryable=False,
            )
        try:
            # Tried once only: three wrong PINs lock the SIM until its PUK is given.
            self._command(f'AT+CPIN="{pin}"')
        except ProviderError as exc:
            raise ProviderError(
                f"the SIM refused its PIN ({exc}); not tried again, a wrong PIN locks it",
                code="sim_pin_rejected",
                retryable=False,
            ) from exc
        state = self._sim_state()
        if state != "READY":
            raise ProviderError(
                f"SIM not ready after its PIN ({state})", code="sim", retryable=True
            )

    def _sim_state(self) -> str:
        try:
            lines = self._command("AT+CPIN?")
        except ProviderError as exc:
            if exc.code in ("timeout", "port"):
                raise
            missing = exc.code == "10" or "not inserted" in exc.code.lower()
            raise ProviderError(
                f"SIM: {exc}", code="no_sim" if missing else "sim", retryable=exc.retryable
            ) from exc
        for line in lines:
            if line.startswith("+CPIN:"):
                return line.split(":", 1)[1].strip()
        raise ProviderError("AT+CPIN? gave no state", code="sim", retryable=True)

    def close(self) -> None:
        """Let the worker finish the messages and reports it has queued (for at most
        timeout_s), then stop the threads and close the port (idempotent); a command still in
        flight then fails."""
        self._jobs.put(None)
        here = threading.current_thread()
        for t in self._threads:
            if t.name == "modem-worker" and t is not here:
                t.join(timeout=self.settings.timeout_s)
        with self._io:
            self._stop.set()
            self._io.notify_all()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            with contextlib.suppress(serial.SerialException, OSError):
                port.cancel_read()
        for t in self._threads:
            if t is not here:
                t.join(timeout=5)
        self._threads = []
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
            self._port = None

    def __enter__(self) -> ModemProvider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the SmsProvider interface -------------------------------------------------------

    def submit(self, sms: OutgoingSms) -> Submitted:
        """Send `sms.text`; message_id is the TP-MR of its last part (status reports name it)."""
        try:
            pdus = encode_submit(
                sms.phone,
                sms.text,
                status_report=self.settings.status_reports,
                smsc=self.settings.smsc,
                concat_ref=self._next_concat_ref(),
            )
        except PduError as exc:
            raise ProviderError(str(exc), code="invalid", retryable=False) from exc
        tracked = _Tracked(phone=sms.phone, reference=sms.reference, total=len(pdus))
        with self._cmd_lock:
            rssi = self._signal()
            if rssi == 99 or rssi < self.settings.min_signal:
                raise ProviderError(
                    f"no usable signal (AT+CSQ rssi {rssi}, need {self.settings.min_signal})",
                    code="no_signal",
                    retryable=True,
                )
            for n, pdu in enumerate(pdus, start=1):
                try:
                    self._send_pdu(pdu, tracked)
                except ProviderError as exc:
                    if exc.uncertain:  # keep it: a late +CMGS and a report may still come
                        with self._state:
                            tracked.total = n
                    else:
                        self._forget(tracked)
                    if n > 1:
                        exc.args = (f"{exc} (after {n - 1} of {len(pdus)} parts were sent)",)
                    raise
        with self._state:
            receipt = self._settle(tracked, None)  # every part's report may be in already
            message_id = str(tracked.mrs[-1])
        if receipt is not None:
            self._emit_receipt(receipt)
        log.info(
            "modem: sent %s to %s in %d part(s), TP-MR %s",
            sms.reference,
            sms.phone,
            len(pdus),
            tracked.mrs,
        )
        return Submitted(provider=self.key, message_id=message_id)

    def receipts(self, *, since: datetime, phones: list[str]) -> list[Receipt]:
        """Receipts collected from +CDS status reports since `since` (all numbers: the modem
        is told, not asked, so `phones` narrows nothing)."""
        with self._state:
            return [r for at, r in self._receipts if at >= since]

    def replies(self) -> list[Reply]:
        """Messages received since the last call (each returned once)."""
        with self._state:
            out = list(self._replies)
            self._replies.clear()
        return out

    @property
    def reopen_every_s(self) -> float:
        return self.settings.reopen_every_s

    @property
    def alive(self) -> bool:
        """True while the port works (False after the modem was unplugged)."""
        with self._io:
            return self._port is not None and self._fault() is None

    # -- commands ------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            raise ProviderError("modem is not started", code="port", retryable=True)
        try:
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise ProviderError(f"modem port: {exc}", code="port", retryable=True) from exc

    def _fault(self) -> str | None:
        """Why no command can run now (closed, or the port failed); called with _io held."""
        return "closed" if self._stop.is_set() else self._broken

    def _begin(self, command: str, tracked: _Tracked | None = None) -> _Exchange:
        with self._io:
            fault = self._fault()
            if fault is not None:
                raise ProviderError(f"modem port: {fault}", code="port", retryable=True)
            self._exchange = _Exchange(command, tracked)
            return self._exchange

    def _end(self, exch: _Exchange) -> None:
        with self._io:
            if self._exchange is exch:
                self._exchange = None

    def _await(self, exch: _Exchange, timeout_s: float, what: str, *, prompt: bool = False) -> None:
        """Wait for the final result (or the "> " prompt); ProviderError on timeout."""
        with self._io:
            done = self._io.wait_for(
                lambda: (
                    exch.final is not None or (prompt and exch.prompt) or self._fault() is not None
                ),
                timeout=timeout_s,
            )
            broken = self._fault()
        if broken is not None:
            self._end(exch)
            raise ProviderError(f"modem port: {broken}", code="port", retryable=True)
        if not done:
            self._end(exch)
            raise ProviderError(
                f"{what}: no answer in {timeout_s:g} s", code="timeout", retryable=True
            )

    def _command(self, command: str, *, timeout_s: float | None = None) -> list[str]:
        """Run one AT command; its information lines, or ProviderError for an error result."""
        with self._cmd_lock:
            exch = self._begin(command)
            self._write(command.encode("ascii") + b"\r")
            self._await(exch, timeout_s or self.settings.timeout_s, command)
            self._end(exch)
        assert exch.final is not None
        if exch.final != "OK":
            raise _result_error(exch.final, command)
        return exch.lines

    def _send_pdu(self, pdu: SubmitPdu, tracked: _Tracked) -> int:
        """AT+CMGS=<length>, the PDU at the prompt, Ctrl-Z: the message reference.

        The reader files the reference under `tracked` as it reads the OK, before any later
        line: a status report that follows at once finds it. When the answer does not come in
        time the send is uncertain; should "+CMGS: <mr>" come later, it is filed all the same."""
        with self._cmd_lock:
            command = f"AT+CMGS={pdu.tpdu_length}"
            exch = self._begin(command, tracked)
            with self._io:
                self._late = None
            self._write(command.encode("ascii") + b"\r")
            try:
                self._await(exch, self.settings.timeout_s, command, prompt=True)
            except ProviderError:
                self._write(b"\x1b")  # should the prompt come late, nothing is sent
                raise
            if exch.final is not None:
                self._end(exch)
                raise _result_error(exch.final, command)
            self._write(pdu.hex.encode("ascii") + b"\x1a")
            try:
                self._await(exch, self.settings.send_timeout_s, command)
            except ProviderError as exc:
                with self._io:
                    self._late = tracked
                raise ProviderError(
                    str(exc) + " after the PDU was given: it may have gone",
                    code=exc.code,
                    retryable=True,
                    uncertain=True,
                ) from exc
            self._end(exch)
        assert exch.final is not None
        if exch.final != "OK":
            raise _result_error(exch.final, command)
        for line in exch.lines:
            if line.startswith("+CMGS:"):
                return int(line.split(":", 1)[1].split(",")[0])
        raise ProviderError(
            "+CMGS without a message reference", code="protocol", retryable=False, uncertain=True
        )

    def _signal(self) -> int:
        """AT+CSQ rssi: 0-31 (-113 dBm + 2 per step), 99 unknown."""
        for line in self._command("AT+CSQ"):
            if line.startswith("+CSQ:"):
                return int(line.split(":", 1)[1].split(",")[0])
        raise ProviderError("AT+CSQ gave no +CSQ line", code="protocol", retryable=True)

    def _next_concat_ref(self) -> int:
        with self._state:
            self._concat_ref = (self._concat_ref + 1) % 256
            return self._concat_ref

    # -- the reader: routes lines to the command in flight or to the URC handlers --------

    def _read_loop(self) -> None:
        port = self._port
        while not self._stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    log.error("modem: port %s failed: %s", self.settings.port, exc)
                    with self._io:
                        self._broken = str(exc)
                        self._io.notify_all()
                return
            if data:
                self._feed(data)

    def _feed(self, data: bytes) -> None:
        self._buf += data
        while True:
            stripped = self._buf.lstrip(b"\r\n ")
            self._buf = stripped
            if not stripped:
                return
            if stripped[:1] == b">" and self._pushed is None:
                del self._buf[:1]
                with self._io:
                    if self._exchange is not None:
                        self._exchange.prompt = True
                        self._io.notify_all()
                continue
            ends = [i for i in (stripped.find(b"\r"), stripped.find(b"\n")) if i >= 0]
            if not ends:
                return
            end = min(ends)
            line = stripped[:end].decode("ascii", errors="replace").strip()
            del self._buf[: end + 1]
            if line:
                self._on_line(line)

    def _on_line(self, line: str) -> None:
        if self._pushed is not None:  # the PDU line after +CDS: <len> or +CMT: ,<len>
            kind, length = self._pushed
            self._pushed = None
            self._jobs.put((kind, line, length))
            return
        if line.startswith(("+CDS:", "+CMT:")):
            try:
                self._pushed = (line[1:4].lower(), int(line.rsplit(",", 1)[-1].split(":")[-1]))
            except ValueError:
                log.warning("modem: unreadable %r", line)
            return
        if line.startswith(("+CMTI:", "+CDSI:")):
            m = re.match(r'\+C(?:MTI|DSI):\s*"?(\w*)"?\s*,\s*(\d+)', line)
            if m is None:
                log.warning("modem: unreadable %r", line)
            else:
                self._jobs.put(("read", m[1], int(m[2])))
            return
        if line.startswith(_IGNORED_URCS):
            log.debug("modem: %s", line)
            return
        with self._io:
            exch = self._exchange
            late = self._late
            if line.startswith("+CMGS:") and (exch is None or "CMGS" not in exch.command):
                self._late = None
                if late is not None:
                    log.warning("modem: late %s for %s: it went", line, late.reference)
                    self._file_mr(late, line)
                return
            if exch is None or exch.final is not None:
                log.debug("modem: unsolicited %r", line)
                return
            if line in _FINAL or line.startswith(_FINAL_PREFIXES):
                exch.final = line
                if line == "OK" and exch.tracked is not None:
                    for info in exch.lines:
                        if info.startswith("+CMGS:"):
                            self._file_mr(exch.tracked, info)
            else:
                exch.lines.append(line)
            self._io.notify_all()

    def _file_mr(self, tracked: _Tracked, line: str) -> None:
        """File the reference in '+CMGS: <mr>' under the message it was sent for."""
        try:
            mr = int(line.split(":", 1)[1].split(",")[0])
        except ValueError:
            return
        with self._state:
            tracked.mrs.append(mr)
            self._tracked[mr] = tracked

    # -- the worker: status reports and received messages -------------------------------

    def _work_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            kind, arg, number = job
            try:
                if kind == "read":
                    self._read_stored(arg, number)
                else:
                    self._absorb(decode_pdu(arg, number), [])
            except (ProviderError, PduError) as exc:
                log.warning("modem: %s %s %s: %s", kind, arg[:60], number, exc)
            except Exception:
                log.exception("modem: handling %s failed", kind)

    def _read_stored(self, mem: str, index: int) -> None:
        """AT+CMGR a message the modem announced, absorb it, then delete it from the SIM."""
        with self._cmd_lock:
            self._select_memory(mem)
            lines = self._command(f"AT+CMGR={index}")
            for i, line in enumerate(lines[:-1]):
                if line.startswith("+CMGR:"):
                    self._absorb_stored(lines[i + 1], _last_int(line), mem, index)
                    return
            log.info("modem: %s %d is empty", mem, index)

    def _read_all_stored(self) -> None:
        """Messages that came while central was down wait on the SIM: read them at start."""
        try:
            lines = self._command("AT+CMGL=4")
        except ProviderError as exc:
            log.warning("modem: cannot list stored messages: %s", exc)
            return
        for i, line in enumerate(lines[:-1]):
            m = re.match(r"\+CMGL:\s*(\d+)\s*,\s*(\d+)", line)
            if m and int(m.group(2)) in (0, 1):  # received unread / read (not our own sent)
                self._absorb_stored(lines[i + 1], _last_int(line), self._memory or "", int(m[1]))

    def _absorb_stored(self, pdu: str, length: int, mem: str, index: int) -> None:
        try:
            decoded = decode_pdu(pdu, length)
        except PduError as exc:
            # Deleted all the same: a SIM holds a few dozen messages, a full one takes no more.
            log.warning("modem: undecodable message %s %d (%s): %s", mem, index, exc, pdu)
            self._delete([(mem, index)])
            return
        self._absorb(decoded, [(mem, index)])

    def _absorb(self, decoded: DeliverPdu | StatusReportPdu, slots: list[tuple[str, int]]) -> None:
        """Queue a reply or a receipt (and hand it to the callback), then free its slots."""
        if isinstance(decoded, StatusReportPdu):
            receipt = self._on_status(decoded)
            if receipt is not None:
                self._emit_receipt(receipt)
            self._delete(slots)
            return
        reply = None
        if decoded.concat is None or decoded.concat[1] <= 1:
            reply = self._reply(decoded, decoded.text, decoded.at, 1)
        else:
            ref, total, seq = decoded.concat
            key = (decoded.sender, ref, total)
            with self._state:
                group = self._parts.setdefault(key, _Parts(at=decoded.at))
                group.texts[seq] = decoded.text
                group.slots += slots
                if len(group.texts) == total:
                    del self._parts[key]
                    text = "".join(group.texts[k] for k in sorted(group.texts))
                    reply, slots = self._reply(decoded, text, group.at, total), group.slots
        if reply is None:
            return  # more parts to come; their slots stay on the SIM until then
        with self._state:
            self._replies.append(reply)
        if self._on_reply is not None:
            try:
                self._on_reply(reply)
            except Exception:
                log.exception("modem: on_reply failed")
        self._delete(slots)

    def _reply(self, pdu: DeliverPdu, text: str, at: datetime | None, parts: int) -> Reply:
        try:
            phone = international_number(pdu.sender)
        except PduError:
            phone = pdu.sender  # an alphanumeric sender
        extra = {"smsc": pdu.smsc, "parts": str(parts)}
        return Reply(provider=self.key, phone=phone, text=text, at=at, extra=extra)

    def _delete(self, slots: list[tuple[str, int]]) -> None:
        for mem, index in slots:
            try:
                with self._cmd_lock:
                    self._select_memory(mem)
                    self._command(f"AT+CMGD={index}")
            except ProviderError as exc:
                log.warning("modem: cannot delete %s %d: %s", mem, index, exc)

    def _select_memory(self, mem: str) -> None:
        if not mem or mem == self._memory:
            return
        try:
            self._command(f'AT+CPMS="{mem}"')
            self._memory = mem
        except ProviderError as exc:
            log.warning("modem: cannot select storage %s: %s", mem, exc)

    # -- status reports --------------------------------------------------------------------

    def _on_status(self, report: StatusReportPdu) -> Receipt | None:
        with self._state:
            tracked = self._tracked.get(report.reference)
            if tracked is not None and report.reference in tracked.mrs:
                tracked.statuses[report.reference] = report.status
                return self._settle(tracked, report)
        # Not one of ours (sent before a restart, or a reference reused 256 messages later).
        return Receipt(
            provider=self.key,
            message_id=str(report.reference),
            phone=report.recipient,
            state=delivery_state(report.status),
            code=f"{report.status:#04x}",
            at=report.discharge,
        )

    def _settle(self, tracked: _Tracked, report: StatusReportPdu | None) -> Receipt | None:
        """The receipt a message's part reports add up to, if any; called with _state held.

        Delivered once every part is; failed as soon as one part fails; a temporary status of
        the report just read is passed on as still submitted."""
        if tracked.done or len(tracked.mrs) < tracked.total:
            return None  # given already, or still sending: submit() settles it at the end
        statuses = [tracked.statuses.get(mr) for mr in tracked.mrs]
        failed = [s for s in statuses if s is not None and s >= 0x40]
        if failed:
            state, status = DeliveryState.FAILED, failed[0]
        elif all(s is not None and s < 0x20 for s in statuses):
            state, status = DeliveryState.DELIVERED, statuses[-1] or 0
        elif report is not None and 0x20 <= report.status < 0x40:
            state, status = DeliveryState.SUBMITTED, report.status
        else:
            return None
        if state is not DeliveryState.SUBMITTED:
            tracked.done = True
            for mr in tracked.mrs:
                if self._tracked.get(mr) is tracked:
                    del self._tracked[mr]
        return Receipt(
            provider=self.key,
            message_id=str(tracked.mrs[-1]),
            phone=tracked.phone,
            state=state,
            code=f"{status:#04x}",
            at=report.discharge if report is not None else None,
            reference=tracked.reference,
        )

    def _forget(self, tracked: _Tracked) -> None:
        with self._state:
            for mr in tracked.mrs:
                if self._tracked.get(mr) is tracked:
                    del self._tracked[mr]

    def _emit_receipt(self, receipt: Receipt) -> None:
        with self._state:
            self._receipts.append((self._clock(), receipt))
        log.info("modem: %s %s %s", receipt.message_id, receipt.state, receipt.code)
        if self._on_receipt is not None:
            try:
                self._on_receipt(receipt)
            except Exception:
                log.exception("modem: on_receipt failed")


def _last_int(line: str) -> int:
    return int(line.rsplit(",", 1)[-1].strip())


def _result_error(final: str, command: str) -> ProviderError:
    if final.startswith("+CMS ERROR:"):
        return cms_error(final.split(":", 1)[1])
    if final.startswith("+CME ERROR:"):
        detail = final.split(":", 1)[1].strip()
        busy = any(w in detail.lower() for w in ("busy", "wait", "not ready"))
        return ProviderError(f"{command}: {final}", code=detail, retryable=busy)
    return ProviderError(f"{command}: {final}", code=final, retryable=False)


__all__ = [
    "CMS_ERRORS",
    "DeliverPdu",
    "ModemProvider",
    "ModemSettings",
    "PduError",
    "StatusReportPdu",
    "SubmitPdu",
    "cms_error",
    "decode_pdu",
    "delivery_state",
    "encode_submit",
    "international_number",
]
