"""A GSM modem on a pseudo-terminal, for the modem SMS provider's tests.

The provider opens `FakeModem.path` (the PTY's slave) as it would /dev/ttyUSB2; the simulator
answers on the master side as a modem does: echo until ATE0, OK/ERROR, +CPIN (with a PIN if
asked), +CSQ, the "> " prompt of AT+CMGS, +CMGS with increasing message references, +CMS ERROR
when told, +CDS status reports and +CMTI for incoming messages kept in its SIM storage (AT+CMGR,
AT+CMGL, AT+CMGD). PDUs are taken apart and built here with code of its own (bit strings, not
the provider's integer packing), so an encoding slip on either side shows.

Tests wait on conditions (wait_command, wait_sent, wait_deleted), never by sleeping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

BEIJING = timezone(timedelta(hours=8))
WAIT_S = 5.0  # how long wait_* give the provider before a test fails

GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_ESCAPED = dict(zip("\f^{}\\[~]|€", (10, 20, 40, 41, 47, 60, 61, 62, 64, 101), strict=True))


# --- PDU pieces, written independently of central/alerts/modem.py ----------------------------


def _bits(data: bytes) -> str:
    """Octets as a bit string, least significant bit first (how septets are packed)."""
    return "".join(format(b, "08b")[::-1] for b in data)


def _octets(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))


def septets_to_text(data: bytes, skip_bits: int, count: int) -> str:
    """GSM-7 text of `count` septets that start `skip_bits` into `data`."""
    bits = _bits(data)
    values = [int(bits[skip_bits + 7 * i : skip_bits + 7 * i + 7][::-1], 2) for i in range(count)]
    out = ""
    escape = False
    reverse = {v: k for k, v in GSM7_ESCAPED.items()}
    for v in values:
        if escape:
            out += reverse[v]
            escape = False
        elif v == 0x1B:
            escape = True
        else:
            out += GSM7[v]
    return out


def text_to_septets(text: str) -> list[int] | None:
    """Septet values for text in the default alphabet (None when a character is not in it)."""
    out: list[int] = []
    for ch in text:
        if ch in GSM7_ESCAPED:
            out += [0x1B, GSM7_ESCAPED[ch]]
        elif ch in GSM7 and ch != "\x1b":
            out.append(GSM7.index(ch))
        else:
            return None
    return out


def _number(data: bytes, ndigits: int, toa: int) -> str:
    digits = "".join(f"{b:02X}"[::-1] for b in data)[:ndigits]
    return ("+" if toa == 0x91 else "") + digits


def address(number: str) -> bytes:
    """An address field for a number ('+86...' international, else unknown type)."""
    digits = number.lstrip("+")
    padded = digits + "F" * (len(digits) % 2)
    body = bytes(int(padded[i : i + 2][::-1], 16) for i in range(0, len(padded), 2))
    return bytes([len(digits), 0x91 if number.startswith("+") else 0x81]) + body


def smsc_field(number: str) -> bytes:
    """The SMSC field before a TPDU (its length counts octets)."""
    a = address(number)
    return bytes([len(a) - 1]) + a[1:]


def timestamp(at: datetime) -> bytes:
    """TP-SCTS: swapped semi-octets, the zone in quarter hours."""
    off = at.utcoffset() or timedelta(0)
    quarters = int(abs(off.total_seconds()) // 900)
    fields = [at.year % 100, at.month, at.day, at.hour, at.minute, at.second]
    out = bytes(int(f"{v:02d}"[::-1], 16) for v in fields)
    tz = int(f"{quarters:02d}"[::-1], 16) | (0x08 if off < timedelta(0) else 0)
    return out + bytes([tz])


@dataclass(frozen=True)
class SentPdu:
    """One SMS-SUBMIT the modem took, taken apart."""

    mr: int
    number: str
    toa: int
    dcs: int
    srr: bool
    text: str
    concat: tuple[int, int, int] | None  # reference, total, sequence
    smsc: str
    pdu: str


class BadPdu(ValueError):
    """The host sent a PDU a modem would refuse (+CMS ERROR: 304)."""


def decode_submit(pdu_hex: str, declared_length: int) -> SentPdu:
    """Take an SMS-SUBMIT apart the way a modem and the SMSC would (strictly)."""
    data = bytes.fromhex(pdu_hex)
    sca_len = data[0]
    smsc = _number(data[2 : 1 + sca_len], (sca_len - 1) * 2, data[1]).rstrip("F") if sca_len else ""
    tpdu = data[1 + sca_len :]
    if len(tpdu) != declared_length:
        raise BadPdu(f"AT+CMGS={declared_length} but the TPDU has {len(tpdu)} octets")
    first = tpdu[0]
    if first & 0x03 != 0x01:
        raise BadPdu(f"not an SMS-SUBMIT: {first:#04x}")
    ndigits, toa = tpdu[2], tpdu[3]
    p = 4 + (ndigits + 1) // 2
    number = _number(tpdu[4:p], ndigits, toa)
    pid, dcs = tpdu[p], tpdu[p + 1]
    if pid != 0:
        raise BadPdu(f"TP-PID {pid}")
    p += 2
    vpf = (first >> 3) & 0x03
    p += {0: 0, 2: 1}.get(vpf, 7)
    udl, ud = tpdu[p], tpdu[p + 1 :]
    concat = None
    hdr = 0
    if first & 0x40:
        hdr = ud[0] + 1
        ies = ud[1:hdr]
        while ies:
            if ies[0] == 0x00:
                concat = (ies[2], ies[3], ies[4])
            ies = ies[2 + ies[1] :]
    if dcs == 0x08:
        if len(ud) != udl:
            raise BadPdu(f"TP-UDL {udl} but {len(ud)} octets")
        try:
            text = ud[hdr:].decode("utf-16-be")  # strict: a split surrogate pair is an error
        except UnicodeDecodeError as exc:
            raise BadPdu(f"bad UCS-2: {exc}") from None
    elif dcs == 0x00:
        skip = -(-hdr * 8 // 7) * 7  # the header rounded up to whole septets
        if len(ud) != -(-udl * 7 // 8):
            raise BadPdu(f"TP-UDL {udl} septets but {len(ud)} octets")
        text = septets_to_text(ud, skip, udl - skip // 7)
    else:
        raise BadPdu(f"unexpected DCS {dcs:#04x}")
    return SentPdu(0, number, toa, dcs, bool(first & 0x20), text, concat, smsc, pdu_hex)


def encode_deliver(
    sender: str, text: str, at: datetime, *, smsc: str, ref: int
) -> list[tuple[str, int]]:
    """SMS-DELIVER PDUs (hex, TPDU length) as a phone's message reaches the SIM: GSM-7 when
    it fits the default alphabet, else UCS-2; in parts of 153 septets / 134 octets when long."""
    septets = text_to_septets(text)
    if septets is not None:
        dcs, size, units = 0x00, 153, septets
        single = len(units) <= 160
    else:
        dcs, size, units = 0x08, 134, list(text.encode("utf-16-be"))
        single = len(units) <= 140
    chunks = [units] if single else [units[i : i + size] for i in range(0, len(units), size)]
    out = []
    for seq, chunk in enumerate(chunks, start=1):
        udh = bytes([5, 0, 3, ref, len(chunks), seq]) if len(chunks) > 1 else b""
        if dcs == 0x08:
            ud = udh + bytes(chunk)
            udl = len(ud)
        else:
            skip = -(-len(udh) * 8 // 7) * 7
            bits = _bits(udh) + "0" * (skip - len(udh) * 8)
            bits += "".join(format(s, "07b")[::-1] for s in chunk)
            ud = _octets(bits)
            udl = skip // 7 + len(chunk)
        first = 0x04 | (0x40 if udh else 0)  # SMS-DELIVER, no more messages waiting
        tpdu = bytes([first]) + address(sender) + bytes([0, dcs]) + timestamp(at)
        tpdu += bytes([udl]) + ud
        out.append(((smsc_field(smsc) + tpdu).hex().upper(), len(tpdu)))
    return out


def encode_status_report(
    mr: int, recipient: str, status: int, submitted: datetime, done: datetime, smsc: str | None
) -> tuple[str, int]:
    """SMS-STATUS-REPORT (hex, TPDU length); smsc None leaves the SMSC field out, as some do."""
    tpdu = bytes([0x06, mr]) + address(recipient) + timestamp(submitted) + timestamp(done)
    tpdu += bytes([status])
    head = smsc_field(smsc) if smsc is not None else b""
    return (head + tpdu).hex().upper(), len(tpdu)


# --- the modem -----------------------------------------------------------------------------


@dataclass
class Stored:
    """A message in SIM storage: stat 0 received unread, 1 received read."""

    stat: int
    pdu: str
    length: int


class FakeModem:
    """A modem behind a PTY; knobs for faults, conditions to wait on, a network side to drive."""

    SMSC = "+8613800571500"

    def __init__(self, *, pin: str | None = None, rssi: int = 20, first_mr: int = 1) -> None:
        self._pin = pin
        self._pin_ok = pin is None
        self._rssi = rssi
        self._mr = first_mr
        self._echo = True
        self._cmee = 0
        self._cmgf = 1
        self._cnmi: tuple[int, ...] = (0, 0, 0, 0, 0)
        self._cms_error: str | None = None
        self._fail_after = 0
        self._auto_report: int | None = None
        self._hold = False
        self._held: list[bytes] = []
        self._injections: list[tuple[str, bytes, str]] = []
        self._storage: dict[int, Stored] = {}
        self._next_index = 1
        self._ref = 200
        self._commands: list[str] = []
        self._sent: list[SentPdu] = []
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._buf = b""
        self._pdu_length: int | None = None  # in the "> " prompt, waiting for PDU + Ctrl-Z
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline: bytes pass as a serial line passes them
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fake-modem", daemon=True)

    # -- life cycle

    def start(self) -> FakeModem:
        """Start answering."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and close the PTY: to the host, the modem is unplugged (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> FakeModem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- knobs

    def set_signal(self, rssi: int) -> None:
        """What AT+CSQ answers (99: no signal)."""
        with self._cond:
            self._rssi = rssi

    def fail_sends(self, error: str | None, *, after: int = 0) -> None:
        """Answer PDUs with '+CMS ERROR: <error>' once `after` more went through (None: send
        again)."""
        with self._cond:
            self._cms_error = error
            self._fail_after = after

    def report_each_send(self, status: int | None) -> None:
        """A fast network: right behind each +CMGS answer, the status report for that message
        (TP-ST `status`; None: reports only when status_report() is called)."""
        with self._cond:
            self._auto_report = status

    def hold_send_answers(self) -> None:
        """Take PDUs but keep their +CMGS answer back (a network that is slow to answer)."""
        with self._cond:
            self._hold = True

    def release_send_answers(self) -> None:
        """Give the answers kept back, late."""
        with self._cond:
            self._hold = False
            held, self._held = self._held, []
        for data in held:
            self.emit(data)

    def inject(self, command: str, urc: bytes, where: Literal["final", "prompt"] = "final") -> None:
        """Write `urc` in the middle of the next answer to a command starting with `command`:
        just before its final result code, or (AT+CMGS) just before the "> " prompt."""
        with self._cond:
            self._injections.append((command, urc, where))

    # -- what the host did

    @property
    def commands(self) -> list[str]:
        with self._cond:
            return list(self._commands)

    @property
    def sent(self) -> list[SentPdu]:
        with self._cond:
            return list(self._sent)

    @property
    def storage(self) -> dict[int, Stored]:
        with self._cond:
            return dict(self._storage)

    def wait_command(self, prefix: str, timeout_s: float = WAIT_S) -> str:
        """The first command received that starts with `prefix` (waits for it)."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [c for c in self._commands if c.startswith(prefix)]
            return bool(found)

        self._wait(seen, timeout_s, f"command {prefix}")
        return found[0]

    def wait_sent(self, count: int, timeout_s: float = WAIT_S) -> list[SentPdu]:
        """The PDUs sent once there are at least `count`."""
        self._wait(lambda: len(self._sent) >= count, timeout_s, f"{count} PDUs")
        return self.sent

    def wait_deleted(self, index: int, timeout_s: float = WAIT_S) -> None:
        """Wait until the host deleted storage slot `index`."""
        self._wait(lambda: index not in self._storage, timeout_s, f"AT+CMGD={index}")

    def _wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=timeout_s):
                raise AssertionError(f"fake modem: no {what} within {timeout_s} s")

    def messages(self) -> list[tuple[str, str]]:
        """(number, text) of each message sent, concatenated parts put together."""
        out: list[tuple[str, str]] = []
        groups: dict[tuple[str, int, int], dict[int, str]] = {}
        for s in self.sent:
            if s.concat is None:
                out.append((s.number, s.text))
                continue
            ref, total, seq = s.concat
            parts = groups.setdefault((s.number, ref, total), {})
            parts[seq] = s.text
            if len(parts) == total:
                out.append((s.number, "".join(parts[k] for k in sorted(parts))))
        return out

    # -- the network side

    def status_report_urc(self, mr: int, status: int = 0x00, *, with_smsc: bool = True) -> bytes:
        """The +CDS a status report for message `mr` comes as (TP-ST `status`)."""
        with self._cond:
            sent = [s for s in self._sent if s.mr == mr]
            cnmi = self._cnmi
        if not sent:
            raise AssertionError(f"fake modem: no message with TP-MR {mr} was sent")
        if not sent[-1].srr:
            raise AssertionError(f"fake modem: message {mr} asked for no status report")
        if cnmi[3] != 1:
            raise AssertionError(f"fake modem: the host did not route reports here: {cnmi}")
        submitted = datetime(2025, 3, 14, 9, 30, 0, tzinfo=BEIJING)
        done = submitted + timedelta(seconds=4)
        pdu, length = encode_status_report(
            mr, sent[-1].number, status, submitted, done, self.SMSC if with_smsc else None
        )
        return f"\r\n+CDS: {length}\r\n{pdu}\r\n".encode()

    def status_report(self, mr: int, status: int = 0x00, *, with_smsc: bool = True) -> None:
        """Report what became of message `mr`: 0x00 delivered, 0x20-0x3F still trying,
        0x40 and up failed."""
        self.emit(self.status_report_urc(mr, status, with_smsc=with_smsc))

    def receive(
        self, sender: str, text: str, *, at: datetime | None = None, announce: bool = True
    ) -> list[int]:
        """A message from a phone reaches the SIM (in parts when long): stored, and announced
        with +CMTI when the host asked for that (AT+CNMI mt=1). The storage slots used."""
        at = at or datetime(2025, 3, 14, 9, 31, 0, tzinfo=BEIJING)
        with self._cond:
            self._ref = (self._ref + 1) % 256
            indices = []
            for pdu, length in encode_deliver(sender, text, at, smsc=self.SMSC, ref=self._ref):
                index = self._next_index
                self._next_index += 1
                self._storage[index] = Stored(0, pdu, length)
                indices.append(index)
            mt = self._cnmi[1]
        if announce and mt == 1:
            for index in indices:
                self.emit(self.cmti_urc(index))
        return indices

    @staticmethod
    def cmti_urc(index: int) -> bytes:
        """The +CMTI announcing storage slot `index`."""
        return f'\r\n+CMTI: "SM",{index}\r\n'.encode()

    def emit(self, data: bytes) -> None:
        """Write bytes to the host (unsolicited)."""
        with self._write_lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._master, view) :]

    # -- the AT side

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._master, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                if key.fd == self._wake_r:
                    sel.close()
                    return
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data:
                    self._feed(data)

    def _feed(self, data: bytes) -> None:
        self._buf += data
        while self._buf:
            if self._pdu_length is not None:
                ends = [i for i in (self._buf.find(b"\x1a"), self._buf.find(b"\x1b")) if i >= 0]
                if not ends:
                    return
                end = min(ends)
                body, mark = self._buf[:end], self._buf[end : end + 1]
                self._buf = self._buf[end + 1 :]
                length, self._pdu_length = self._pdu_length, None
                if mark == b"\x1a":
                    self._take_pdu(body.decode("ascii").strip(), length)
                else:
                    self.emit(b"\r\nOK\r\n")  # ESC: the send is cancelled
                continue
            end = self._buf.find(b"\r")
            if end < 0:
                # An ESC outside the prompt is ignored, as modems do.
                self._buf = self._buf.replace(b"\x1b", b"")
                return
            raw, self._buf = self._buf[:end], self._buf[end + 1 :]
            line = raw.replace(b"\x1b", b"").strip(b"\n ").decode("ascii", errors="replace")
            if self._echo:
                self.emit(raw + b"\r")
            if line:
                with self._cond:
                    self._commands.append(line)
                    self._cond.notify_all()
                self._answer(line)

    def _reply(self, command: str, lines: list[str], final: str = "OK") -> None:
        out = b"".join(f"\r\n{line}\r\n".encode() for line in lines)
        urc = self._take_injection(command, "final")
        self.emit(out + urc + f"\r\n{final}\r\n".encode())

    def _take_injection(self, command: str, where: str) -> bytes:
        with self._cond:
            for i, (prefix, urc, w) in enumerate(self._injections):
                if w == where and command.startswith(prefix):
                    del self._injections[i]
                    return urc
        return b""

    def _answer(self, cmd: str) -> None:
        answer = self._handle(cmd, cmd.upper(), cmd.split("=", 1)[-1])
        if answer is not None:
            self._reply(cmd, *answer)
        if cmd.upper().startswith("AT+CMGD="):
            # Gone once the host has its OK, so wait_deleted() means the host is done with it.
            with self._cond:
                self._storage.pop(int(cmd.split("=", 1)[1].split(",")[0]), None)
                self._cond.notify_all()

    def _cme(self, text: str) -> tuple[list[str], str]:
        return [], f"+CME ERROR: {text}" if self._cmee == 2 else "ERROR"

    def _handle(self, cmd: str, upper: str, arg: str) -> tuple[list[str], str] | None:
        """Lines and final result for one command (None: the answer comes later)."""
        ok: tuple[list[str], str] = ([], "OK")
        if upper == "AT":
            return ok
        if upper in ("ATE0", "ATE1"):
            self._echo = upper == "ATE1"
            return ok
        if upper.startswith("AT+CMEE="):
            self._cmee = int(arg)
            return ok
        if upper == "AT+CPIN?":
            return ["+CPIN: READY" if self._pin_ok else "+CPIN: SIM PIN"], "OK"
        if upper.startswith("AT+CPIN="):
            if self._pin_ok or arg.strip('"') != self._pin:
                return self._cme("incorrect password")
            self._pin_ok = True
            return ok
        if not self._pin_ok:
            return self._cme("SIM PIN required")
        if upper.startswith("AT+CMGF="):
            self._cmgf = int(arg)
            return ok
        if upper.startswith("AT+CSMS="):
            return ["+CSMS: 1,1,1"], "OK"
        if upper.startswith("AT+CNMI="):
            with self._cond:
                self._cnmi = tuple(int(v or 0) for v in arg.split(","))
            return ok
        if upper == "AT+CSQ":
            with self._cond:
                return [f"+CSQ: {self._rssi},99"], "OK"
        if upper.startswith("AT+CPMS="):
            n = len(self._storage)
            return [f"+CPMS: {n},30,{n},30,{n},30"], "OK"
        if upper.startswith("AT+CMGS="):
            if self._cmgf != 0:
                return [], "+CMS ERROR: 302"  # this simulator speaks PDU mode only
            self._pdu_length = int(arg)
            self.emit(self._take_injection(cmd, "prompt") + b"\r\n> ")
            return None
        if upper.startswith("AT+CMGR="):
            with self._cond:
                item = self._storage.get(int(arg))
                if item is None:
                    return ok  # an empty slot
                lines = [f"+CMGR: {item.stat},,{item.length}", item.pdu]
                item.stat = 1
            return lines, "OK"
        if upper.startswith("AT+CMGL="):
            with self._cond:
                lines = []
                for index, item in sorted(self._storage.items()):
                    if int(arg) == 4 or item.stat == int(arg):
                        lines += [f"+CMGL: {index},{item.stat},,{item.length}", item.pdu]
                        item.stat = 1
            return lines, "OK"
        if upper.startswith("AT+CMGD="):
            return ok  # the slot is freed in _answer, after this OK is written
        return [], "ERROR"

    def _take_pdu(self, pdu: str, length: int) -> None:
        command = f"AT+CMGS={length}"
        try:
            sent = decode_submit(pdu, length)
        except (BadPdu, ValueError, IndexError) as exc:
            with self._cond:
                self._commands.append(f"<bad PDU: {exc}>")
            self._reply(command, [], "+CMS ERROR: 304")
            return
        with self._cond:
            if self._cms_error is not None and self._fail_after <= 0:
                error: str | None = self._cms_error
            else:
                self._fail_after -= 1
                error = None
                mr = self._mr
                self._mr = (self._mr + 1) % 256
                self._sent.append(dataclasses.replace(sent, mr=mr))
                self._cond.notify_all()
            hold = self._hold
            auto = self._auto_report
        if error is not None:
            self._reply(command, [], f"+CMS ERROR: {error}")
            return
        answer = f"\r\n+CMGS: {mr}\r\n\r\nOK\r\n".encode()
        if hold:
            with self._cond:
                self._held.append(answer)
            return
        self._reply(command, [f"+CMGS: {mr}"])
        if auto is not None:
            self.status_report(mr, auto)
