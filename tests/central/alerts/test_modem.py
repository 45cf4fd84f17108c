"""The modem SMS provider against a modem simulated on a pseudo-terminal (tests/peers).

The provider really opens the PTY with pyserial and speaks AT commands; the simulator takes the
PDUs apart with its own decoder, so what it reports is what a network would have been given.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from central.alerts.modem import ModemProvider, ModemSettings
from central.alerts.pdu import (
    GSM7_BASIC,
    DeliverPdu,
    StatusReportPdu,
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
    SmsProvider,
)
from tests.peers.fake_modem import BEIJING, FakeModem, decode_submit

ALERT = "【WildWatch】长兴保护区发现3只白鹭疑似死亡，回复 1 3527 确认"
PHONE = "+8613800000000"
OFFICER = "+8613900000000"
WAIT_S = 5.0


def sms(text: str = ALERT, phone: str = "13800000000", reference: str = "n-1") -> OutgoingSms:
    return OutgoingSms(phone=phone, template="alert", params={}, text=text, reference=reference)


@dataclass
class Link:
    """A started provider and what it handed to its callbacks."""

    provider: ModemProvider
    receipts: queue.Queue[Receipt] = field(default_factory=queue.Queue)
    replies: queue.Queue[Reply] = field(default_factory=queue.Queue)

    def next_receipt(self) -> Receipt:
        return self.receipts.get(timeout=WAIT_S)

    def next_reply(self) -> Reply:
        return self.replies.get(timeout=WAIT_S)


def open_link(fake: FakeModem, **settings: Any) -> Link:
    receipts: queue.Queue[Receipt] = queue.Queue()
    replies: queue.Queue[Reply] = queue.Queue()
    provider = ModemProvider(
        ModemSettings(port=fake.path, **{"timeout_s": 5.0, **settings}),
        on_receipt=receipts.put,
        on_reply=replies.put,
    )
    provider.start()
    return Link(provider, receipts, replies)


@pytest.fixture()
def modem() -> Iterator[FakeModem]:
    with FakeModem() as fake:
        yield fake


@pytest.fixture()
def link(modem: FakeModem) -> Iterator[Link]:
    link = open_link(modem)
    yield link
    link.provider.close()


# -- sending ---------------------------------------------------------------------------------


def test_modem_starts_in_pdu_mode_with_reports_and_new_message_notices(
    modem: FakeModem, link: Link
) -> None:
    assert isinstance(link.provider, SmsProvider)
    assert link.provider.key == "modem"
    assert link.provider.alive
    commands = modem.commands
    for expected in ("ATE0", "AT+CMEE=2", "AT+CPIN?", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0", "AT+CSQ"):
        assert expected in commands
    assert commands.index("AT+CMGF=0") < commands.index("AT+CNMI=2,1,0,1,0")


def test_chinese_alert_goes_as_ucs2_to_the_international_number(
    modem: FakeModem, link: Link
) -> None:
    submitted = link.provider.submit(sms())

    (sent,) = modem.wait_sent(1)
    assert sent.text == ALERT
    assert sent.number == PHONE and sent.toa == 0x91
    assert sent.dcs == 0x08
    assert sent.srr and sent.concat is None
    assert submitted.provider == "modem"
    assert submitted.message_id == str(sent.mr)
    # the signal was checked before the message was given
    commands = modem.commands
    assert commands.index("AT+CSQ", commands.index("AT+CMGL=4")) < commands.index(
        modem.wait_command("AT+CMGS=")
    )


def test_ascii_text_goes_as_gsm7(modem: FakeModem, link: Link) -> None:
    text = "WildWatch: 3 dead egrets [Changxing] ~ reply 1 3527 {ok} 5€"
    link.provider.submit(sms(text))

    (sent,) = modem.wait_sent(1)
    assert sent.dcs == 0x00
    assert sent.text == text
    assert len(encode_submit(PHONE, text)) == 1


def test_long_chinese_text_goes_in_parts_that_reassemble(modem: FakeModem, link: Link) -> None:
    # 66 UTF-16 units, then a swan emoji (a surrogate pair) across the first part's end (67):
    # a part that split the pair would not decode on its own.
    head = ALERT + "现场" * 13 + "报"
    assert len(head.encode("utf-16-be")) == 132
    text = head + "🦢" + "请带防护装备前往，" * 12
    submitted = link.provider.submit(sms(text))

    parts = modem.wait_sent(3)
    assert len(parts) == 3
    assert parts[0].text == head
    assert [p.concat[1:] for p in parts if p.concat] == [(3, 1), (3, 2), (3, 3)]
    assert len({p.concat[0] for p in parts if p.concat}) == 1
    assert all(p.dcs == 0x08 and p.number == PHONE for p in parts)
    assert modem.messages() == [(PHONE, text)]
    assert submitted.message_id == str(parts[-1].mr)


def test_long_ascii_text_goes_in_gsm7_parts(modem: FakeModem, link: Link) -> None:
    # the escape pair of "[" falls on the part boundary: it must not be split
    text = "x" * 152 + "[" + "Changxing egrets " * 8
    link.provider.submit(sms(text))

    parts = modem.wait_sent(2)
    assert len(parts) == 2
    assert all(p.dcs == 0x00 for p in parts)
    assert parts[0].text == "x" * 152
    assert modem.messages() == [(PHONE, text)]


def test_two_messages_take_different_concatenation_references(modem: FakeModem, link: Link) -> None:
    link.provider.submit(sms("长" * 100, reference="a"))
    link.provider.submit(sms("兴" * 100, reference="b"))

    parts = modem.wait_sent(4)
    refs = {p.concat[0] for p in parts if p.concat}
    assert len(refs) == 2
    assert [t for _, t in modem.messages()] == ["长" * 100, "兴" * 100]


@pytest.mark.parametrize("rssi", [99, 3])
def test_no_signal_refuses_to_send(modem: FakeModem, link: Link, rssi: int) -> None:
    modem.set_signal(rssi)

    with pytest.raises(ProviderError) as info:
        link.provider.submit(sms())

    assert info.value.code == "no_signal"
    assert info.value.retryable and not info.value.uncertain
    assert not any(c.startswith("AT+CMGS") for c in modem.commands)
    assert modem.sent == []
    modem.set_signal(12)
    link.provider.submit(sms())
    assert modem.wait_sent(1)[0].text == ALERT


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        ("38", "38", True),  # network out of order
        ("331", "331", True),  # no network service
        ("21", "21", False),  # short message transfer rejected
        ("1", "1", False),  # unassigned number
        ("network out of order", "38", True),  # verbose, as AT+CMEE=2 may give it
        ("Invalid destination address", "Invalid destination address", True),
    ],
)
def test_cms_error_is_mapped(
    modem: FakeModem, link: Link, error: str, code: str, retryable: bool
) -> None:
    modem.fail_sends(error)

    with pytest.raises(ProviderError) as info:
        link.provider.submit(sms())

    assert info.value.code == code
    assert info.value.retryable is retryable
    assert not info.value.uncertain
    modem.fail_sends(None)
    assert link.provider.submit(sms()).message_id == "1"  # a refused send uses no reference


def test_cms_error_on_a_later_part_says_how_many_went(modem: FakeModem, link: Link) -> None:
    modem.fail_sends("42", after=1)  # congestion on the second part

    with pytest.raises(ProviderError) as info:
        link.provider.submit(sms("长" * 100))

    assert info.value.code == "42" and info.value.retryable and not info.value.uncertain
    assert "after 1 of 2 parts" in str(info.value)
    assert len(modem.sent) == 1


def test_bad_number_is_not_retryable(link: Link) -> None:
    with pytest.raises(ProviderError) as info:
        link.provider.submit(sms(phone="duty officer"))

    assert info.value.code == "invalid" and not info.value.retryable


def test_send_without_answer_is_uncertain_and_a_late_answer_still_gets_its_receipt(
    modem: FakeModem,
) -> None:
    link = open_link(modem, send_timeout_s=0.3)
    try:
        modem.hold_send_answers()
        with pytest.raises(ProviderError) as info:
            link.provider.submit(sms(reference="n-late"))
        assert info.value.uncertain and info.value.retryable
        assert info.value.code == "timeout"

        modem.release_send_answers()  # "+CMGS: 1" arrives after all
        (sent,) = modem.wait_sent(1)
        modem.status_report(sent.mr, 0x00)

        receipt = link.next_receipt()
        assert receipt.reference == "n-late"
        assert receipt.state is DeliveryState.DELIVERED
        assert receipt.message_id == str(sent.mr)
    finally:
        link.provider.close()


def test_unplugged_modem_gives_a_retryable_port_error(modem: FakeModem) -> None:
    link = open_link(modem)
    try:
        modem.close()
        with pytest.raises(ProviderError) as info:
            link.provider.submit(sms())
        assert info.value.code == "port" and info.value.retryable
    finally:
        link.provider.close()
    assert not link.provider.alive


# -- status reports ----------------------------------------------------------------------------


@pytest.mark.parametrize("with_smsc", [True, False])
def test_status_reports_become_receipts(modem: FakeModem, link: Link, with_smsc: bool) -> None:
    started = datetime.now(UTC)
    first = link.provider.submit(sms(reference="n-1"))
    second = link.provider.submit(sms(phone="+8613700000000", reference="n-2"))

    modem.status_report(int(first.message_id), 0x00, with_smsc=with_smsc)
    modem.status_report(int(second.message_id), 0x45, with_smsc=with_smsc)

    delivered, failed = link.next_receipt(), link.next_receipt()
    assert delivered == Receipt(
        provider="modem",
        message_id=first.message_id,
        phone="13800000000",
        state=DeliveryState.DELIVERED,
        code="0x00",
        at=datetime(2025, 3, 14, 9, 30, 4, tzinfo=BEIJING),
        reference="n-1",
    )
    assert failed.message_id == second.message_id
    assert failed.state is DeliveryState.FAILED
    assert failed.code == "0x45" and failed.reference == "n-2"
    assert link.provider.receipts(since=started, phones=[]) == [delivered, failed]
    assert link.provider.receipts(since=datetime.now(UTC) + timedelta(seconds=1), phones=[]) == []


def test_temporary_status_keeps_the_message_submitted(modem: FakeModem, link: Link) -> None:
    submitted = link.provider.submit(sms())
    modem.status_report(int(submitted.message_id), 0x30)  # SC still trying (no response)
    modem.status_report(int(submitted.message_id), 0x00)

    trying, delivered = link.next_receipt(), link.next_receipt()
    assert trying.state is DeliveryState.SUBMITTED and trying.code == "0x30"
    assert delivered.state is DeliveryState.DELIVERED


def test_a_long_message_is_delivered_when_every_part_is(modem: FakeModem, link: Link) -> None:
    submitted = link.provider.submit(sms("长" * 140, reference="n-long"))
    first, second, third = (p.mr for p in modem.wait_sent(3))
    assert submitted.message_id == str(third)

    modem.status_report(second, 0x00)
    modem.status_report(first, 0x00)
    modem.status_report(third, 0x00)

    receipt = link.next_receipt()  # none came for the first two reports
    assert receipt.message_id == submitted.message_id
    assert receipt.state is DeliveryState.DELIVERED and receipt.reference == "n-long"


def test_reports_that_come_while_the_parts_are_sent(modem: FakeModem, link: Link) -> None:
    modem.report_each_send(0x00)  # each part's report right behind its +CMGS answer

    long = link.provider.submit(sms("长" * 140, reference="n-long"))
    short = link.provider.submit(sms(reference="n-short"))

    receipts = [link.next_receipt(), link.next_receipt()]
    assert [(r.reference, r.message_id, r.state) for r in receipts] == [
        ("n-long", long.message_id, DeliveryState.DELIVERED),
        ("n-short", short.message_id, DeliveryState.DELIVERED),
    ]
    assert long.message_id == str(modem.sent[2].mr)


def test_a_long_message_fails_when_one_part_does(modem: FakeModem, link: Link) -> None:
    submitted = link.provider.submit(sms("长" * 100, reference="n-long"))
    first, _ = (p.mr for p in modem.wait_sent(2))

    modem.status_report(first, 0x41)  # incompatible destination

    receipt = link.next_receipt()
    assert receipt.message_id == submitted.message_id
    assert receipt.state is DeliveryState.FAILED and receipt.code == "0x41"


def test_report_for_an_unknown_reference_still_becomes_a_receipt(modem: FakeModem) -> None:
    link = open_link(modem)
    try:
        link.provider.submit(sms())
    finally:
        link.provider.close()
    link = open_link(modem)  # central restarted: the reference is not in memory any more
    try:
        modem.status_report(1, 0x00)
        receipt = link.next_receipt()
        assert (receipt.message_id, receipt.phone, receipt.reference) == ("1", PHONE, "")
        assert receipt.state is DeliveryState.DELIVERED
    finally:
        link.provider.close()


# -- incoming messages -----------------------------------------------------------------------


def test_chinese_reply_becomes_a_reply_and_leaves_the_sim(modem: FakeModem, link: Link) -> None:
    at = datetime(2025, 3, 14, 9, 42, 7, tzinfo=BEIJING)
    (index,) = modem.receive(OFFICER, "1 3527 收到，马上到", at=at)

    reply = link.next_reply()
    assert (reply.provider, reply.phone, reply.text, reply.at) == (
        "modem",
        OFFICER,
        "1 3527 收到，马上到",
        at,
    )
    modem.wait_deleted(index)
    assert modem.storage == {}
    assert link.provider.replies() == [reply]
    assert link.provider.replies() == []  # each reply is handed out once


def test_gsm7_reply_from_a_national_number(modem: FakeModem, link: Link) -> None:
    (index,) = modem.receive("13900000000", "1 3527")

    reply = link.next_reply()
    assert (reply.phone, reply.text) == (OFFICER, "1 3527")
    modem.wait_deleted(index)


def test_long_reply_is_put_together_before_it_is_handed_on(modem: FakeModem, link: Link) -> None:
    text = "1 3527 已到现场，" + "白鹭尸体已装袋冷藏，" * 10
    indices = modem.receive(OFFICER, text)
    assert len(indices) == 2

    reply = link.next_reply()
    assert reply.text == text and reply.extra["parts"] == "2"
    for index in indices:
        modem.wait_deleted(index)


def test_messages_waiting_on_the_sim_are_read_at_start(modem: FakeModem) -> None:
    modem.receive("+8613700000000", "1 3527")  # before the provider listens: no +CMTI
    (index,) = modem.receive(OFFICER, "2 3527 稍后到")

    link = open_link(modem)
    try:
        assert sorted(r.text for r in link.provider.replies()) == ["1 3527", "2 3527 稍后到"]
        modem.wait_deleted(index)
        assert modem.storage == {}
    finally:
        link.provider.close()


# -- the SIM ---------------------------------------------------------------------------------


def test_sim_pin_is_given_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_TEST_SIM_PIN", "4321")
    with FakeModem(pin="4321") as fake:
        link = open_link(fake, sim_pin_env="WW_TEST_SIM_PIN")
        try:
            assert 'AT+CPIN="4321"' in fake.commands
            link.provider.submit(sms())
            assert fake.wait_sent(1)[0].text == ALERT
        finally:
            link.provider.close()


def test_sim_pin_missing_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WW_TEST_SIM_PIN", raising=False)
    with FakeModem(pin="4321") as fake:
        with pytest.raises(ProviderError) as info:
            open_link(fake, sim_pin_env="WW_TEST_SIM_PIN")
        assert info.value.code == "sim_pin" and not info.value.retryable
        assert not any(c.startswith("AT+CPIN=") for c in fake.commands)


def test_wrong_sim_pin_is_tried_once_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_TEST_SIM_PIN", "0000")
    with FakeModem(pin="4321") as fake:
        with pytest.raises(ProviderError) as info:
            open_link(fake, sim_pin_env="WW_TEST_SIM_PIN")
        assert info.value.code == "sim_pin_rejected" and not info.value.retryable
        assert [c for c in fake.commands if c.startswith("AT+CPIN=")] == ['AT+CPIN="0000"']


# -- unsolicited codes in the middle of commands ---------------------------------------------


def test_status_report_between_cmgs_and_ok_breaks_neither(modem: FakeModem, link: Link) -> None:
    first = link.provider.submit(sms(reference="n-1"))
    modem.inject("AT+CMGS", modem.status_report_urc(int(first.message_id)))

    second = link.provider.submit(sms("第二条", reference="n-2"))

    assert second.message_id == str(int(first.message_id) + 1)
    receipt = link.next_receipt()
    assert receipt.reference == "n-1" and receipt.state is DeliveryState.DELIVERED


def test_status_report_before_the_prompt_breaks_neither(modem: FakeModem, link: Link) -> None:
    first = link.provider.submit(sms(reference="n-1"))
    modem.inject("AT+CMGS", modem.status_report_urc(int(first.message_id), 0x46), "prompt")

    link.provider.submit(sms("第二条", reference="n-2"))

    assert [t for _, t in modem.messages()] == [ALERT, "第二条"]
    receipt = link.next_receipt()
    assert receipt.reference == "n-1" and receipt.state is DeliveryState.FAILED


def test_new_message_notice_inside_a_signal_query(modem: FakeModem, link: Link) -> None:
    (index,) = modem.receive(OFFICER, "1 3527", announce=False)
    modem.inject("AT+CSQ", modem.cmti_urc(index))

    link.provider.submit(sms())

    assert modem.wait_sent(1)[0].text == ALERT
    assert link.next_reply().text == "1 3527"
    modem.wait_deleted(index)


# -- settings and the codec on their own -----------------------------------------------------


def test_settings_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        ModemSettings.model_validate({"port": "/dev/ttyUSB2", "pin": "1234"})
    settings = ModemSettings(port="/dev/ttyUSB2")
    assert (settings.baudrate, settings.min_signal, settings.status_reports) == (115200, 5, True)


def test_numbers_are_put_in_international_form() -> None:
    for given in ("13800000000", "8613800000000", "008613800000000", "+86 138-0000-0000"):
        assert international_number(given) == PHONE
    assert international_number("10086") == "10086"


def test_codec_agrees_with_published_pdus() -> None:
    # 3GPP-style examples found in the wild: an SMS-SUBMIT "hellohello" and an SMS-DELIVER "TEST"
    sent = decode_submit("0011000B916407281553F80000AA0AE8329BFD4697D9EC37", 23)
    assert (sent.number, sent.text, sent.dcs) == ("+46708251358", "hellohello", 0)
    got = decode_pdu("07916407058099F9040B916407950303F100008921222140140004D4E2940A")
    assert isinstance(got, DeliverPdu)
    assert (got.sender, got.text, got.smsc) == ("+46705930301", "TEST", "+46705008999")
    assert len(GSM7_BASIC) == 128


def test_status_report_pdu_is_decoded_with_or_without_smsc() -> None:
    tpdu = "0601" + "0D91683108000000F0" + "52304190034023" * 2 + "00"
    for pdu, length in ((tpdu, len(tpdu) // 2), ("00" + tpdu, len(tpdu) // 2)):
        got = decode_pdu(pdu, length)
        assert isinstance(got, StatusReportPdu)
        assert (got.reference, got.recipient, got.status) == (1, PHONE, 0)
        assert got.discharge == datetime(2025, 3, 14, 9, 30, 4, tzinfo=BEIJING)
