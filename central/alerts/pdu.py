"""SMS PDUs for the GSM modem provider: the 3GPP TS 23.038 alphabet and TS 23.040 SMS-SUBMIT,
SMS-DELIVER and SMS-STATUS-REPORT, as pure functions (tested without a modem).

Written here rather than taken from PyPI: `smspdudecoder` only decodes (no SMS-SUBMIT, no
status reports), and `python-gsmmodem-new` (no release since 2021, untyped) mis-encodes
characters outside the basic plane and § in GSM-7, and reuses the message reference as the
concatenation reference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# Pure functions: they are tested without a modem.

#: The GSM 7-bit default alphabet; index = septet value (0x1B escapes to GSM7_EXTENSION).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The default alphabet's extension table: character -> septet after the 0x1B escape.
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_GSM7_CODE = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != 0x1B}
_GSM7_EXT_CHAR = {code: ch for ch, code in GSM7_EXTENSION.items()}

GSM7_SINGLE = 160  # septets in one message
GSM7_PART = 153  # septets in one part of a concatenated message (6-octet UDH + 1 fill bit)
UCS2_SINGLE = 140  # octets (70 UTF-16 units)
UCS2_PART = 134  # octets (67 UTF-16 units)

DCS_GSM7 = 0x00
DCS_8BIT = 0x04
DCS_UCS2 = 0x08


class PduError(ValueError):
    """A PDU that cannot be decoded (or a number that cannot be encoded)."""


@dataclass(frozen=True, slots=True)
class SubmitPdu:
    """One SMS-SUBMIT ready for AT+CMGS: `tpdu_length` octets after the SMSC field."""

    hex: str
    tpdu_length: int


@dataclass(frozen=True, slots=True)
class DeliverPdu:
    """A received message (SMS-DELIVER); `concat` = (reference, total, sequence) of a part."""

    sender: str
    text: str
    at: datetime | None
    concat: tuple[int, int, int] | None = None
    smsc: str = ""


@dataclass(frozen=True, slots=True)
class StatusReportPdu:
    """An SMS-STATUS-REPORT: what happened to the message with TP-MR `reference`."""

    reference: int
    recipient: str
    status: int
    sc_time: datetime | None
    discharge: datetime | None


def international_number(phone: str) -> str:
    """The number as sent and reported: '+8613800000000' for a Chinese mobile written as
    '13800000000', '8613800000000', '008613800000000' or '+86 138-0000-0000'; other
    international numbers with '+'; short codes and landlines as plain digits."""
    p = re.sub(r"[\s\-().]", "", phone)
    if p.startswith("00"):
        p = "+" + p[2:]
    if p.startswith("+") and p[1:].isdigit() and 3 <= len(p) - 1 <= 20:
        return p
    if re.fullmatch(r"1\d{10}", p):
        return "+86" + p
    if re.fullmatch(r"861\d{10}", p):
        return "+" + p
    if p.isdigit() and 3 <= len(p) <= 20:
        return p
    raise PduError(f"not a phone number: {phone!r}")


def gsm7_septets(text: str) -> list[int] | None:
    """The text in the GSM default alphabet (escapes included), or None when it does not fit."""
    out: list[int] = []
    for ch in text:
        code = _GSM7_CODE.get(ch)
        if code is not None:
            out.append(code)
        elif ch in GSM7_EXTENSION:
            out += (0x1B, GSM7_EXTENSION[ch])
        else:
            return None
    return out


def gsm7_text(septets: Sequence[int]) -> str:
    """Decode septet values (escapes resolved; an unknown escape gives a space, as 23.038 says)."""
    out: list[str] = []
    escaped = False
    for s in septets:
        if escaped:
            out.append(_GSM7_EXT_CHAR.get(s, " "))
            escaped = False
        elif s == 0x1B:
            escaped = True
        else:
            out.append(GSM7_BASIC[s])
    return "".join(out)


def pack_septets(septets: Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack 7-bit values LSB first, after `fill_bits` zero bits (which align them after a UDH)."""
    acc = 0
    for i, s in enumerate(septets):
        acc |= (s & 0x7F) << (fill_bits + 7 * i)
    nbits = fill_bits + 7 * len(septets)
    return acc.to_bytes((nbits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """The first `count` 7-bit values packed in `data` after `fill_bits` bits."""
    acc = int.from_bytes(data, "little") >> fill_bits
    return [(acc >> (7 * i)) & 0x7F for i in range(count)]


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _digits(data: bytes, count: int) -> str:
    out: list[str] = []
    for b in data:
        out += (f"{b & 0x0F:X}", f"{b >> 4:X}")
    return "".join(out)[:count].rstrip("F")


def encode_address(phone: str) -> bytes:
    """TP-DA: digit count, type of address (0x91 international, 0x81 unknown), semi-octets."""
    number = international_number(phone)
    toa = 0x91 if number.startswith("+") else 0x81
    digits = number.lstrip("+")
    return bytes([len(digits), toa]) + _semi_octets(digits)


def encode_smsc(phone: str) -> bytes:
    """The SMSC field that precedes the TPDU (its length counts octets, not digits)."""
    body = encode_address(phone)[1:]
    return bytes([len(body)]) + body


def decode_address(data: bytes, pos: int) -> tuple[str, int]:
    """An originating/recipient address at `pos`: (number, position after it)."""
    try:
        ndigits, toa = data[pos], data[pos + 1]
    except IndexError:
        raise PduError("address cut short") from None
    nbytes = (ndigits + 1) // 2
    body = data[pos + 2 : pos + 2 + nbytes]
    if len(body) < nbytes:
        raise PduError("address cut short")
    end = pos + 2 + nbytes
    if toa & 0x70 == 0x50:  # alphanumeric (a sender name such as "10086" operators use)
        return gsm7_text(unpack_septets(body, ndigits * 4 // 7)), end
    digits = _digits(body, ndigits)
    if toa & 0x70 == 0x10:
        return "+" + digits, end
    return digits, end


def decode_timestamp(data: bytes) -> datetime:
    """TP-SCTS / TP-DT: 7 semi-octets, the last the zone in quarter hours (bit 3: west)."""
    if len(data) != 7:
        raise PduError("timestamp cut short")
    f = [(b & 0x0F) * 10 + (b >> 4) for b in data[:6]]
    tz = data[6]
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    offset = timedelta(minutes=15 * quarters) * (-1 if tz & 0x08 else 1)
    try:
        return datetime(2000 + f[0], f[1], f[2], f[3], f[4], f[5], tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"bad timestamp {data.hex()}: {exc}") from None


def _split_units(text: str) -> list[bytes]:
    """UTF-16 parts of at most UCS2_PART octets, never splitting a surrogate pair."""
    parts: list[bytes] = []
    cur = b""
    for ch in text:
        enc = ch.encode("utf-16-be")
        if len(cur) + len(enc) > UCS2_PART:
            parts.append(cur)
            cur = b""
        cur += enc
    return [*parts, cur]


def _split_septets(text: str) -> list[list[int]]:
    """GSM-7 parts of at most GSM7_PART septets, never splitting an escape pair."""
    parts: list[list[int]] = []
    cur: list[int] = []
    for ch in text:
        enc = gsm7_septets(ch) or []
        if len(cur) + len(enc) > GSM7_PART:
            parts.append(cur)
            cur = []
        cur += enc
    return [*parts, cur]


def encode_submit(
    phone: str,
    text: str,
    *,
    status_report: bool = True,
    smsc: str | None = None,
    concat_ref: int = 0,
) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs for `text` to `phone`: GSM-7 when every character is in the default
    alphabet, else UCS-2 (UTF-16); more than one message's worth goes as concatenated parts
    (UDH IEI 0x00, reference `concat_ref`). TP-MR is 0: the modem sets it and returns it."""
    head = encode_smsc(smsc) if smsc else b"\x00"
    da = encode_address(phone)
    septets = gsm7_septets(text)
    bodies: list[tuple[int, bytes, int]]  # (DCS, user data, UDL) without the UDH
    if septets is not None:
        chunks = [septets] if len(septets) <= GSM7_SINGLE else _split_septets(text)
        bodies = [(DCS_GSM7, b"", len(c)) for c in chunks]
        gsm_chunks: list[list[int]] | None = chunks
    else:
        units = text.encode("utf-16-be")
        ucs = [units] if len(units) <= UCS2_SINGLE else _split_units(text)
        bodies = [(DCS_UCS2, u, len(u)) for u in ucs]
        gsm_chunks = None
    total = len(bodies)
    if total > 255:
        raise PduError(f"text too long: {total} parts")
    out: list[SubmitPdu] = []
    for seq, (dcs, ud, udl) in enumerate(bodies, start=1):
        first = 0x01 | (0x20 if status_report else 0)  # SMS-SUBMIT, no TP-VP, TP-SRR
        udh = b""
        if total > 1:
            first |= 0x40  # TP-UDHI
            udh = bytes([5, 0x00, 3, concat_ref & 0xFF, total, seq])
        if gsm_chunks is not None:
            hdr_bits = len(udh) * 8
            fill = (7 - hdr_bits % 7) % 7
            ud = udh + pack_septets(gsm_chunks[seq - 1], fill)
            udl = (hdr_bits + fill) // 7 + udl
        else:
            ud = udh + ud
            udl = len(ud)
        tpdu = bytes([first, 0x00]) + da + bytes([0x00, dcs, udl]) + ud
        out.append(SubmitPdu(hex=(head + tpdu).hex().upper(), tpdu_length=len(tpdu)))
    return out


def _alphabet(dcs: int) -> int:
    """DCS_GSM7, DCS_8BIT or DCS_UCS2 for a TP-DCS octet (TS 23.038 section 4)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (and its automatic-deletion twin)
        if dcs & 0x20:
            raise PduError(f"compressed text (DCS {dcs:#04x}) is not supported")
        return {0: DCS_GSM7, 1: DCS_8BIT, 2: DCS_UCS2}.get((dcs >> 2) & 3, DCS_GSM7)
    if group == 0xE:
        return DCS_UCS2
    if group == 0xF:
        return DCS_8BIT if dcs & 0x04 else DCS_GSM7
    return DCS_GSM7


def _user_data(
    data: bytes, pos: int, dcs: int, udhi: bool
) -> tuple[str, tuple[int, int, int] | None]:
    try:
        udl = data[pos]
    except IndexError:
        raise PduError("user data length missing") from None
    alphabet = _alphabet(dcs)
    ud = data[pos + 1 :]
    concat = None
    hdr_len = 0
    if udhi and ud:
        hdr_len = ud[0] + 1
        i = 1
        while i + 1 < hdr_len:
            iei, ie_len = ud[i], ud[i + 1]
            ie = ud[i + 2 : i + 2 + ie_len]
            if iei == 0x00 and ie_len == 3:
                concat = (ie[0], ie[1], ie[2])
            elif iei == 0x08 and ie_len == 4:
                concat = ((ie[0] << 8) | ie[1], ie[2], ie[3])
            i += 2 + ie_len
    if alphabet == DCS_GSM7:
        hdr_septets = (hdr_len * 8 + 6) // 7
        fill = hdr_septets * 7 - hdr_len * 8
        count = udl - hdr_septets
        body = ud[hdr_len:]
        if count < 0 or len(body) * 8 < fill + 7 * count:
            raise PduError("GSM-7 user data cut short")
        return gsm7_text(unpack_septets(body, count, fill)), concat
    body = ud[hdr_len:udl]
    if len(ud) < udl:
        raise PduError("user data cut short")
    if alphabet == DCS_UCS2:
        return body.decode("utf-16-be", errors="replace"), concat
    return body.decode("latin-1"), concat


def decode_pdu(pdu_hex: str, tpdu_length: int | None = None) -> DeliverPdu | StatusReportPdu:
    """Decode an SMS-DELIVER or SMS-STATUS-REPORT as +CMGR, +CMGL, +CMT or +CDS give it.

    `tpdu_length` is the length those responses state; when the data is exactly that long the
    modem left the SMSC field out (some do for +CDS), otherwise it leads the PDU."""
    try:
        data = bytes.fromhex(pdu_hex.strip())
    except ValueError:
        raise PduError(f"not hexadecimal: {pdu_hex[:40]!r}") from None
    if not data:
        raise PduError("empty PDU")
    smsc = ""
    pos = 0
    if tpdu_length is None or len(data) != tpdu_length:
        if data[0]:
            smsc, _ = decode_address(bytes([(data[0] - 1) * 2]) + data[1:], 0)
        pos = 1 + data[0]
    try:
        first = data[pos]
        mti = first & 0x03
        if mti == 0x00:
            sender, pos = decode_address(data, pos + 1)
            dcs = data[pos + 1]
            at = decode_timestamp(data[pos + 2 : pos + 9])
            text, concat = _user_data(data, pos + 9, dcs, bool(first & 0x40))
            return DeliverPdu(sender=sender, text=text, at=at, concat=concat, smsc=smsc)
        if mti == 0x02:
            mr = data[pos + 1]
            recipient, pos = decode_address(data, pos + 2)
            sc_time = decode_timestamp(data[pos : pos + 7])
            discharge = decode_timestamp(data[pos + 7 : pos + 14])
            return StatusReportPdu(
                reference=mr,
                recipient=recipient,
                status=data[pos + 14],
                sc_time=sc_time,
                discharge=discharge,
            )
    except IndexError:
        raise PduError(f"PDU cut short: {pdu_hex[:60]}") from None
    raise PduError(f"not a received message or status report (TP-MTI {mti})")
