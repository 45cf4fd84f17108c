"""Tencent Cloud SMS provider: the real SDK against a local server that speaks the API 3.0 and
checks the TC3-HMAC-SHA256 signature; caps and delivery on a test clock, no sleeping."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    Reply,
    SmsProvider,
    Submitted,
)
from central.alerts.tencent import (
    CALLBACK_RESPONSE,
    NUMBER_CAP_CODES,
    TencentProvider,
    TencentSettings,
    e164,
    parse_reply_callback,
    parse_status_callback,
)
from tests.helpers import FakeClock, free_port
from tests.peers.callbacks import CallbackReceiver
from tests.peers.tencent_sms import TencentSmsServer

KEY_ENV = "WILDWATCH_TEST_TENCENT_SECRET_KEY"
ALERT_TEMPLATE = "449739"  # 【野保监测】{1}发现{2}异常，回复“{3}”确认
ACK_TEMPLATE = "449740"  # 【野保监测】{1}已确认告警{2}
PHONE = "13800138000"
OTHER_PHONE = "+8613900139000"
# 10:00 on 1 Dec 2026 in Beijing: the tests' "now", moved only by clock.advance()
START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START.timestamp())


@pytest.fixture
def server(clock: FakeClock) -> Iterator[TencentSmsServer]:
    with TencentSmsServer(templates={ALERT_TEMPLATE: 3, ACK_TEMPLATE: 2}, clock=clock) as srv:
        yield srv


def settings_for(server: TencentSmsServer, **overrides: Any) -> TencentSettings:
    data: dict[str, Any] = {
        "secret_id": server.secret_id,
        "secret_key_env": KEY_ENV,
        "sdk_app_id": server.sdk_app_id,
        "sign_name": "野保监测",
        "templates": {"alert": ALERT_TEMPLATE, "ack_notice": ACK_TEMPLATE},
        "template_params": {"alert": ["site", "species", "code"], "ack_notice": ["who", "code"]},
        "endpoint": server.endpoint,
        "scheme": "http",
        "timeout_s": 5.0,
    }
    data.update(overrides)
    return TencentSettings.model_validate(data)


ProviderFactory = Callable[..., TencentProvider]


@pytest.fixture
def make_provider(server: TencentSmsServer, clock: FakeClock) -> ProviderFactory:
    def _make(*, key: str | None = None, **overrides: Any) -> TencentProvider:
        return TencentProvider(
            settings_for(server, **overrides),
            environ={KEY_ENV: server.secret_key if key is None else key},
            clock=lambda: datetime.fromtimestamp(clock(), UTC),
        )

    return _make


@pytest.fixture
def provider(make_provider: ProviderFactory) -> TencentProvider:
    return make_provider()


def alert(
    phone: str = PHONE, *, code: str = "1 3527", species: str = "白鹭", ref: str = "msg-1"
) -> OutgoingSms:
    params = {"site": "长兴保护区", "species": species, "code": code}
    text = f"【野保监测】长兴保护区发现{species}异常，回复“{code}”确认"
    return OutgoingSms(phone=phone, template="alert", params=params, text=text, reference=ref)


def refused(provider: TencentProvider, sms: OutgoingSms) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.submit(sms)
    return caught.value


# -- sending ------------------------------------------------------------------------------------


def test_send_ok_signed_with_template_sign_params_and_session_context(
    provider: TencentProvider, server: TencentSmsServer
) -> None:
    assert isinstance(provider, SmsProvider)
    result = provider.submit(alert(ref="alert-42/step-1"))

    assert isinstance(result, Submitted)
    assert result.provider == "tencent"
    [sms] = server.sent
    assert result.message_id == sms.serial_no and ":" in sms.serial_no
    [seen] = server.calls("SendSms")
    assert seen.signature_ok
    assert (seen.version, seen.region) == ("2021-01-11", "ap-guangzhou")
    assert seen.headers["Authorization"].startswith(
        f"TC3-HMAC-SHA256 Credential={server.secret_id}/"
    )
    assert seen.headers["Host"] == server.endpoint
    assert seen.body["PhoneNumberSet"] == ["+8613800138000"]
    assert seen.body["SmsSdkAppId"] == server.sdk_app_id
    assert seen.body["SignName"] == "野保监测"
    assert seen.body["TemplateId"] == ALERT_TEMPLATE
    assert seen.body["TemplateParamSet"] == ["长兴保护区", "白鹭", "1 3527"]  # template order
    assert seen.body["SessionContext"] == "alert-42/step-1"
    assert sms.session_context == "alert-42/step-1"


def test_phone_forms_become_e164() -> None:
    for form in ("13800138000", "+8613800138000", "8613800138000", "0086 138-0013-8000"):
        assert e164(form) == "+8613800138000"
    with pytest.raises(ProviderError) as caught:
        e164("duty officer")
    assert caught.value.code == "InvalidParameterValue.IncorrectPhoneNumber"
    assert not caught.value.retryable


def test_wrong_secret_key_is_auth_failure_not_retryable(
    make_provider: ProviderFactory, server: TencentSmsServer
) -> None:
    error = refused(make_provider(key="not-the-key"), alert())

    assert error.code == "AuthFailure.SignatureFailure"
    assert not error.retryable and not error.uncertain
    [seen] = server.requests
    assert not seen.signature_ok
    assert server.sent == []


def test_missing_secret_key_fails_at_construction(server: TencentSmsServer) -> None:
    with pytest.raises(ValueError, match=KEY_ENV):
        TencentProvider(settings_for(server), environ={})


@pytest.mark.parametrize(
    "code", ["InternalError", "InternalError.OtherError", "RequestLimitExceeded"]
)
def test_internal_errors_and_throttling_are_retryable(
    provider: TencentProvider, server: TencentSmsServer, code: str
) -> None:
    server.fail_next(1, code=code)
    error = refused(provider, alert())
    assert (error.code, error.retryable, error.uncertain) == (code, True, False)
    assert server.sent == []

    assert provider.submit(alert()).message_id == server.sent[0].serial_no  # the retry goes


def test_http_500_is_retryable(provider: TencentProvider, server: TencentSmsServer) -> None:
    server.fail_next(2, http_status=500)
    for _ in range(2):
        error = refused(provider, alert())
        assert (error.code, error.retryable, error.uncertain) == ("ServerNetworkError", True, False)
    assert provider.submit(alert()).message_id == server.sent[0].serial_no


def test_timeout_after_sending_is_uncertain_and_receipts_tell(
    make_provider: ProviderFactory, server: TencentSmsServer, clock: FakeClock
) -> None:
    provider = make_provider(timeout_s=0.5)
    server.hold_next(1, seconds=30)
    try:
        error = refused(provider, alert(ref="timed-out"))
    finally:
        server.release()

    assert error.retryable and error.uncertain
    [sms] = server.sent  # Tencent did take it: retrying blindly would send it twice
    server.mark_delivered(sms.serial_no)
    [receipt] = provider.receipts(since=START, phones=[PHONE])
    assert (receipt.message_id, receipt.reference) == (sms.serial_no, "timed-out")
    assert receipt.state is DeliveryState.DELIVERED


def test_nothing_listening_is_retryable_and_certainly_not_sent(
    make_provider: ProviderFactory,
) -> None:
    provider = make_provider(endpoint=f"127.0.0.1:{free_port()}")
    error = refused(provider, alert())
    assert error.retryable and not error.uncertain


def test_same_content_within_30_seconds_is_refused_with_its_code(
    provider: TencentProvider, server: TencentSmsServer, clock: FakeClock
) -> None:
    provider.submit(alert())
    clock.advance(29)
    error = refused(provider, alert())
    assert error.code == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert error.code in NUMBER_CAP_CODES
    assert not error.retryable and not error.uncertain

    provider.submit(alert(code="1 4410"))  # other content to the same number goes
    provider.submit(alert(OTHER_PHONE))  # the same content to another number goes
    clock.advance(1)
    provider.submit(alert())  # 30 s later the same content goes again
    assert len(server.sent) == 4


def test_daily_limit_per_number_is_refused_with_its_code_until_the_next_day(
    provider: TencentProvider, server: TencentSmsServer, clock: FakeClock
) -> None:
    assert provider.settings.daily_limit_per_number == 10
    assert provider.settings.same_content_interval_s == 30
    for n in range(10):
        provider.submit(alert(code=f"1 {1000 + n}"))
        clock.advance(60)
    error = refused(provider, alert(code="1 2000"))
    assert error.code == "LimitExceeded.PhoneNumberDailyLimit"
    assert error.code in NUMBER_CAP_CODES
    assert not error.retryable

    provider.submit(alert(OTHER_PHONE, code="1 2000"))  # the cap is per number
    # midnight in Beijing (16:00 UTC) starts a new calendar day
    clock.advance((datetime(2026, 12, 1, 16, 0, tzinfo=UTC) - START).total_seconds() - 600)
    provider.submit(alert(code="1 2001"))
    assert len(server.sent) == 12


@pytest.mark.parametrize(
    "value",
    ["http://x.cn/a", "https://wildwatch.example/a/1", "www.baidu.com", "t.cn/A6x2", "见bit.ly/3"],
)
def test_link_in_a_variable_is_refused_before_sending(
    provider: TencentProvider, server: TencentSmsServer, value: str
) -> None:
    error = refused(provider, alert(species=value))
    assert error.code == "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter"
    assert not error.retryable
    assert server.requests == []


def test_long_or_bracketed_variable_is_refused_before_sending(
    provider: TencentProvider, server: TencentSmsServer, make_provider: ProviderFactory
) -> None:
    long_name = "东方白鹳幼鸟与成鸟混群十三只"  # 14 characters > 12
    error = refused(provider, alert(species=long_name))
    assert error.code == "InvalidParameterValue.TemplateParameterLengthLimit"
    assert not error.retryable
    error = refused(provider, alert(species="【白鹭】"))
    assert error.code == "InvalidParameterValue.TemplateParameterFormatError"
    assert server.requests == []

    # an enterprise account (no per-variable limit) raises the setting
    make_provider(param_max_chars=20).submit(alert(species=long_name))
    assert server.sent[0].params[1] == long_name


def test_unknown_template_missing_variable_and_bad_number_are_not_sent(
    provider: TencentProvider, server: TencentSmsServer
) -> None:
    unknown = OutgoingSms(PHONE, "reminder", {"code": "1"}, "text", "r1")
    assert refused(provider, unknown).code == "FailedOperation.TemplateIdNotExist"
    missing = OutgoingSms(PHONE, "ack_notice", {"who": "王五"}, "text", "r2")
    error = refused(provider, missing)
    assert error.code == "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
    assert refused(provider, alert("12345")).code == "InvalidParameterValue.IncorrectPhoneNumber"
    too_long = alert(ref="r" * 512)  # SessionContext must stay under 512 bytes
    assert not refused(provider, too_long).retryable
    assert server.requests == []


def test_template_or_sign_refused_by_tencent_is_not_retryable(
    make_provider: ProviderFactory, server: TencentSmsServer
) -> None:
    error = refused(
        make_provider(templates={"alert": "999999", "ack_notice": ACK_TEMPLATE}), alert()
    )
    assert error.code == "FailedOperation.TemplateIncorrectOrUnapproved"
    assert not error.retryable
    error = refused(make_provider(sign_name="别的签名"), alert())
    assert error.code == "FailedOperation.SignatureIncorrectOrUnapproved"
    assert not error.retryable
    assert [r.signature_ok for r in server.requests] == [True, True]
    assert server.sent == []


# -- receipts -----------------------------------------------------------------------------------


def test_receipts_by_number(
    provider: TencentProvider, server: TencentSmsServer, clock: FakeClock
) -> None:
    first = provider.submit(alert(ref="a1"))
    second = provider.submit(alert(OTHER_PHONE, ref="a2"))
    provider.submit(alert(code="1 9999", ref="a3"))  # no report from the carrier yet
    clock.advance(5)
    server.mark_delivered(first.message_id)
    server.mark_failed(second.message_id, errmsg="MK:0001")

    receipts = provider.receipts(since=START - timedelta(minutes=1), phones=[PHONE, OTHER_PHONE])

    assert receipts == [
        Receipt(
            provider="tencent",
            message_id=first.message_id,
            phone="+8613800138000",
            state=DeliveryState.DELIVERED,
            code="DELIVRD",
            at=START + timedelta(seconds=5),
            reference="a1",
        ),
        Receipt(
            provider="tencent",
            message_id=second.message_id,
            phone="+8613900139000",
            state=DeliveryState.FAILED,
            code="MK:0001",
            at=START + timedelta(seconds=5),
            reference="a2",
        ),
    ]
    calls = server.calls("PullSmsSendStatusByPhoneNumber")
    assert [c.body["PhoneNumber"] for c in calls] == ["+8613800138000", "+8613900139000"]
    assert all(c.signature_ok and c.body["Offset"] == 0 and c.body["Limit"] == 100 for c in calls)
    assert calls[0].body["BeginTime"] == int((START - timedelta(minutes=1)).timestamp())
    # receipts for messages sent before `since` are not asked for
    assert provider.receipts(since=START + timedelta(seconds=1), phones=[PHONE]) == []


def test_receipts_since_more_than_7_days_ago_is_clamped(
    provider: TencentProvider, server: TencentSmsServer, clock: FakeClock
) -> None:
    sent = provider.submit(alert())
    server.mark_delivered(sent.message_id)
    [receipt] = provider.receipts(since=START - timedelta(days=30), phones=[PHONE])
    assert receipt.message_id == sent.message_id
    [call] = server.calls("PullSmsSendStatusByPhoneNumber")
    assert call.body["BeginTime"] > clock() - 7 * 86400


def test_receipts_from_the_queue_are_handed_out_once(
    provider: TencentProvider, server: TencentSmsServer
) -> None:
    sent = provider.submit(alert(ref="q1"))
    server.mark_failed(sent.message_id)
    [receipt] = provider.receipts(since=START, phones=[])
    assert (receipt.state, receipt.code, receipt.reference) == (
        DeliveryState.FAILED,
        "UNDELIV",
        "q1",
    )
    assert provider.receipts(since=START, phones=[]) == []
    assert len(server.calls("PullSmsSendStatus")) == 2


def test_receipt_query_errors_are_mapped(
    provider: TencentProvider, server: TencentSmsServer
) -> None:
    server.fail_next(1, code="InternalError")
    with pytest.raises(ProviderError) as caught:
        provider.receipts(since=START, phones=[PHONE])
    assert caught.value.retryable and not caught.value.uncertain


# -- push callbacks ---------------------------------------------------------------------------

# The documented examples (https://cloud.tencent.com/document/product/382/5807 and
# https://www.tencentcloud.com/document/product/382/43548), with a number filled in.
DOCUMENTED_STATUS = """[
  {
    "user_receive_time": "2015-10-17 08:03:04",
    "nationcode": "86",
    "mobile": "13800138000",
    "report_status": "SUCCESS",
    "errmsg": "DELIVRD",
    "description": "用户短信送达成功",
    "sid": "xxxxxxx"
  }
]""".encode()
DOCUMENTED_REPLY = b"""{
  "extend": "",
  "mobile": "13800138000",
  "nationcode": "86",
  "sign": "SMS signature",
  "text": "User reply",
  "time": 1457336869
}"""


def test_parse_documented_status_report() -> None:
    assert parse_status_callback(DOCUMENTED_STATUS) == [
        Receipt(
            provider="tencent",
            message_id="xxxxxxx",
            phone="+8613800138000",
            state=DeliveryState.DELIVERED,
            code="DELIVRD",
            at=datetime(2015, 10, 17, 0, 3, 4, tzinfo=UTC),  # Beijing time, UTC+8
        )
    ]


def test_parse_status_reports_several_failures_and_duplicates() -> None:
    item = {
        "user_receive_time": "2026-12-01 10:00:07",
        "nationcode": "86",
        "mobile": "13900139000",
        "report_status": "FAIL",
        "errmsg": "MK:0001",
        "description": "用户短信未送达",
        "sid": "2019:123",
    }
    receipts = parse_status_callback(json.dumps([item, item]).encode())
    assert [r.state for r in receipts] == [DeliveryState.FAILED, DeliveryState.FAILED]
    assert receipts[0] == receipts[1]  # a pushed-again report is the caller's to ignore
    assert receipts[0].code == "MK:0001"
    assert receipts[0].at == START + timedelta(seconds=7)


@pytest.mark.parametrize(
    "body",
    [b"not json", b'"text"', b"[1, 2]", b'[{"sid": "1"}]', b'[{"report_status": "SUCCESS"}]'],
)
def test_bad_status_report_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_status_callback(body)


def test_parse_documented_reply() -> None:
    assert parse_reply_callback(DOCUMENTED_REPLY) == [
        Reply(
            provider="tencent",
            phone="+8613800138000",
            text="User reply",
            at=datetime.fromtimestamp(1457336869, UTC),
            extra={"sign": "SMS signature", "nationcode": "86"},
        )
    ]
    with pytest.raises(ValueError):
        parse_reply_callback(b'{"mobile": "13800138000"}')


def test_callback_response_is_the_documented_one() -> None:
    assert dict(CALLBACK_RESPONSE) == {"result": 0, "errmsg": "OK"}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    r = CallbackReceiver(  # central's callback endpoint, with Tencent's parsers and answer
        receipt_path="/status",
        parse_receipts=parse_status_callback,
        parse_replies=parse_reply_callback,
        answer=CALLBACK_RESPONSE,
    )
    yield r
    r.close()


def test_pushed_status_reports_and_replies_round_trip(
    provider: TencentProvider,
    server: TencentSmsServer,
    clock: FakeClock,
    receiver: CallbackReceiver,
) -> None:
    first = provider.submit(alert(ref="p1"))
    second = provider.submit(alert(OTHER_PHONE, ref="p2"))
    clock.advance(3)
    server.mark_delivered(first.message_id)
    server.mark_failed(second.message_id)

    status, answer = server.post_status_callback(
        receiver.url("/status"), [first.message_id, second.message_id]
    )
    assert status == 200 and json.loads(answer) == {"result": 0, "errmsg": "OK"}
    assert [(r.message_id, r.state, r.phone) for r in receiver.receipts] == [
        (first.message_id, DeliveryState.DELIVERED, "+8613800138000"),
        (second.message_id, DeliveryState.FAILED, "+8613900139000"),
    ]
    assert receiver.receipts[0].at == START + timedelta(seconds=3)

    clock.advance(60)
    status, _ = server.post_reply_callback(receiver.url("/reply"), "+8613800138000", " 1 3527 ")
    assert status == 200
    [reply] = receiver.replies
    assert (reply.phone, reply.text, reply.at) == (
        "+8613800138000",
        "1 3527",
        START + timedelta(seconds=63),
    )
    assert reply.extra["sign"] == "野保监测"


# -- settings -----------------------------------------------------------------------------------


def test_settings_forbid_unknown_keys_and_need_every_templates_variables(
    server: TencentSmsServer,
) -> None:
    settings = settings_for(server)
    assert (settings.region, settings.scheme) == ("ap-guangzhou", "http")
    assert TencentSettings.model_fields["endpoint"].default == "sms.tencentcloudapi.com"
    assert TencentSettings.model_fields["scheme"].default == "https"
    with pytest.raises(ValidationError):
        settings_for(server, secret_key="in config")
    with pytest.raises(ValidationError):
        settings_for(server, template_params={"alert": ["site", "species", "code"]})
    with pytest.raises(ValidationError):
        settings_for(server, scheme="ftp")
