"""Aliyun SMS provider: the real SDK talking HTTP to a local Aliyun (tests/peers/aliyun_sms.py)
that checks the ACS3-HMAC-SHA256 signature; faults are the server's, not mocked functions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from central.alerts.aliyun import (
    BEIJING,
    CALLBACK_RESPONSE,
    CALLBACK_RESPONSE_BODY,
    AliyunProvider,
    AliyunSettings,
    parse_reply_callback,
    parse_report_callback,
)
from central.alerts.providers import (
    DeliveryState,
    OutgoingSms,
    ProviderError,
    Receipt,
    Reply,
    SmsProvider,
)
from tests.helpers import free_port
from tests.peers.aliyun_sms import AliyunSmsServer, StoredSms
from tests.peers.callbacks import CallbackReceiver

KEY_ID = "LTAI5tTestKeyId"
SECRET = "test-secret-0123456789"
SECRET_ENV = "WW_TEST_ALIYUN_SECRET"
SIGN = "野保监测"
PHONE = "13800138000"
TEMPLATES = {"alert": "SMS_460001", "ack_notice": "SMS_460002"}


@pytest.fixture()
def server() -> Iterator[AliyunSmsServer]:
    with AliyunSmsServer(access_keys={KEY_ID: SECRET}, sign_names=[SIGN]) as srv:
        yield srv


def make_provider(
    server: AliyunSmsServer | None = None,
    *,
    secret: str = SECRET,
    endpoint: str | None = None,
    **overrides: Any,
) -> AliyunProvider:
    fields: dict[str, Any] = {
        "access_key_id": KEY_ID,
        "access_key_secret_env": SECRET_ENV,
        "sign_name": SIGN,
        "templates": TEMPLATES,
        "endpoint": endpoint or (server.endpoint if server else "127.0.0.1:1"),
        "protocol": "http",
        "timeout_s": 5.0,
    }
    fields.update(overrides)
    return AliyunProvider(AliyunSettings(**fields), environ={SECRET_ENV: secret})


def alert(reference: str = "ww-1", phone: str = PHONE, **params: str) -> OutgoingSms:
    values = {"site": "长兴保护区", "what": "死亡鸟类3只", "code": "3527"}
    values.update(params)
    return OutgoingSms(
        phone=phone,
        template="alert",
        params=values,
        text=f"长兴保护区发现异常：{values['what']}，请回复“1 3527”确认。",
        reference=reference,
    )


def refusal(provider: AliyunProvider, sms: OutgoingSms) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.submit(sms)
    return caught.value


# -- sending ---------------------------------------------------------------------------------


def test_send_ok_returns_bizid_and_server_saw_a_signed_template_request(
    server: AliyunSmsServer,
) -> None:
    provider = make_provider(server)
    assert isinstance(provider, SmsProvider)
    assert provider.key == "aliyun"

    submitted = provider.submit(alert("ww-42"))

    assert submitted.provider == "aliyun"
    assert submitted.message_id.endswith("^0")
    [seen] = server.requests
    assert seen.action == "SendSms"
    assert seen.signature_ok and seen.access_key_id == KEY_ID
    assert seen.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=" + KEY_ID)
    assert seen.query["TemplateCode"] == "SMS_460001"
    assert seen.query["SignName"] == SIGN
    assert seen.query["PhoneNumbers"] == PHONE
    assert seen.query["OutId"] == "ww-42"
    assert json.loads(seen.query["TemplateParam"]) == {
        "site": "长兴保护区",
        "what": "死亡鸟类3只",
        "code": "3527",
    }
    stored = server.message(submitted.message_id)
    assert stored.content == "【野保监测】长兴保护区发现异常：死亡鸟类3只，请回复“1 3527”确认。"
    assert stored.send_status == 1


@pytest.mark.parametrize(
    ("secret", "key_id", "code"),
    [
        ("not-the-secret", KEY_ID, "SignatureDoesNotMatch"),
        (SECRET, "LTAI5tUnknown", "InvalidAccessKeyId.NotFound"),
    ],
)
def test_bad_credentials_refused_not_retryable(
    server: AliyunSmsServer, secret: str, key_id: str, code: str
) -> None:
    provider = make_provider(server, secret=secret, access_key_id=key_id)

    err = refusal(provider, alert())

    assert err.code == code
    assert not err.retryable and not err.uncertain
    [seen] = server.requests
    assert not seen.signature_ok and seen.code == code and 400 <= seen.status < 500
    assert server.messages == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (400, "Throttling.User")],
)
def test_server_errors_and_throttling_are_retryable_and_sent_once(
    server: AliyunSmsServer, status: int, code: str
) -> None:
    provider = make_provider(server)
    server.fail_next(1, status=status, code=code)

    err = refusal(provider, alert("ww-1"))

    assert err.code == code
    assert err.retryable and not err.uncertain
    assert len(server.requests) == 1  # the SDK did not retry on its own: sends are not idempotent
    assert server.messages == []
    assert provider.submit(alert("ww-1")).message_id  # the retry goes through


def test_read_timeout_after_sending_is_uncertain_and_receipts_find_the_message(
    server: AliyunSmsServer,
) -> None:
    impatient = make_provider(server, timeout_s=0.5)
    arrived = server.stall_next()

    err = refusal(impatient, alert("ww-timeout"))

    assert err.retryable and err.uncertain
    assert err.code == "Timeout"
    assert arrived.is_set()
    assert len(server.requests) == 1
    server.release()
    # What the caller does before any retry: look the message up by its reference (OutId).
    receipts = make_provider(server).receipts(
        since=datetime.now(UTC) - timedelta(minutes=5), phones=[PHONE]
    )
    assert [(r.reference, r.state) for r in receipts] == [("ww-timeout", DeliveryState.SUBMITTED)]


def test_connection_refused_is_retryable_and_certain() -> None:
    provider = make_provider(endpoint=f"127.0.0.1:{free_port()}", timeout_s=2.0)

    err = refusal(provider, alert())

    assert err.code == "ConnectError"
    assert err.retryable and not err.uncertain


def test_daily_cap_per_number_and_template_is_not_retryable() -> None:
    with AliyunSmsServer(access_keys={KEY_ID: SECRET}, sign_names=[SIGN], daily_cap=2) as server:
        provider = make_provider(server)
        provider.submit(alert("ww-1"))
        provider.submit(alert("ww-2"))

        err = refusal(provider, alert("ww-3"))

        assert err.code == "isv.BUSINESS_LIMIT_CONTROL"
        assert not err.retryable and not err.uncertain
        assert "Permits:2" in str(err)
        # The cap is per number and template: another template, or another person, still works.
        provider.submit(
            OutgoingSms(
                phone=PHONE,
                template="ack_notice",
                params={"site": "长兴保护区", "code": "3527", "who": "王五"},
                text="长兴保护区告警3527已由王五确认。",
                reference="ww-4",
            )
        )
        provider.submit(alert("ww-5", phone="13900139000"))
        assert [m.out_id for m in server.messages] == ["ww-1", "ww-2", "ww-4", "ww-5"]


@pytest.mark.parametrize(
    ("sms_changes", "settings_changes", "code"),
    [
        ({"phone": "12345"}, {}, "isv.MOBILE_NUMBER_ILLEGAL"),
        ({}, {"templates": {"alert": "SMS_999999"}}, "isv.SMS_TEMPLATE_ILLEGAL"),
        ({}, {"sign_name": "别的签名"}, "isv.SMS_SIGNATURE_ILLEGAL"),
        ({"params": {"site": "长兴保护区", "code": "3527"}}, {}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
def test_business_refusals_are_not_retryable(
    server: AliyunSmsServer,
    sms_changes: dict[str, Any],
    settings_changes: dict[str, Any],
    code: str,
) -> None:
    provider = make_provider(server, **settings_changes)
    base = alert()
    sms = OutgoingSms(
        phone=sms_changes.get("phone", base.phone),
        template=base.template,
        params=sms_changes.get("params", base.params),
        text=base.text,
        reference=base.reference,
    )

    err = refusal(provider, sms)

    assert err.code == code
    assert not err.retryable
    assert server.requests[0].status == 200  # Aliyun answers business refusals with HTTP 200
    assert server.messages == []


@pytest.mark.parametrize(
    ("template", "params", "code"),
    [
        ("alert", {"what": "详见https://example.cn/a"}, "isv.PARAM_NOT_SUPPORT_URL"),
        ("alert", {"what": "见 HTTP://x.cn"}, "isv.PARAM_NOT_SUPPORT_URL"),
        ("alert", {"what": "见www.example.cn"}, "isv.PARAM_NOT_SUPPORT_URL"),
        ("alert", {"what": "鸟" * 36}, "isv.PARAM_LENGTH_LIMIT"),
        ("alert", {"what": ""}, "isv.TEMPLATE_MISSING_PARAMETERS"),
        ("no_such_template", {}, "UnknownTemplate"),
    ],
)
def test_refused_before_sending(
    server: AliyunSmsServer, template: str, params: dict[str, str], code: str
) -> None:
    provider = make_provider(server)
    base = alert(**params)
    sms = OutgoingSms(
        phone=base.phone,
        template=template,
        params=base.params,
        text=base.text,
        reference=base.reference,
    )

    err = refusal(provider, sms)

    assert err.code == code
    assert not err.retryable
    assert server.requests == []  # nothing reached Aliyun


def test_variable_of_exactly_the_limit_is_sent(server: AliyunSmsServer) -> None:
    make_provider(server).submit(alert(what="鸟" * 35))
    assert len(server.messages) == 1


# -- receipts (pull) -------------------------------------------------------------------------


def test_receipts_after_the_server_marks_delivered_and_failed(server: AliyunSmsServer) -> None:
    provider = make_provider(server)
    before = datetime.now(UTC) - timedelta(minutes=1)
    delivered = provider.submit(alert("ww-a")).message_id
    failed = provider.submit(alert("ww-b")).message_id
    provider.submit(alert("ww-c"))
    provider.submit(alert("ww-other", phone="13900139000"))
    server.mark_delivered(delivered)
    server.mark_failed(failed, "MK:0001")

    receipts = provider.receipts(since=before, phones=[PHONE, PHONE])

    by_ref = {r.reference: r for r in receipts}
    assert sorted(by_ref) == ["ww-a", "ww-b", "ww-c"]  # one number asked, once
    assert by_ref["ww-a"].state is DeliveryState.DELIVERED
    assert by_ref["ww-a"].code == "DELIVERED"
    assert by_ref["ww-b"].state is DeliveryState.FAILED
    assert by_ref["ww-b"].code == "MK:0001"
    assert by_ref["ww-c"].state is DeliveryState.SUBMITTED
    assert by_ref["ww-c"].at is None
    at = by_ref["ww-a"].at
    assert at is not None and at.tzinfo is BEIJING
    assert at == server.message(delivered).received_at
    assert all(r.phone == PHONE and r.provider == "aliyun" for r in receipts)
    assert all(r.message_id == "" for r in receipts)  # QuerySendDetails rows carry no BizId

    one = provider.receipt_for(failed, phone=PHONE, sent_at=datetime.now(UTC))
    assert one == Receipt(
        provider="aliyun",
        message_id=failed,
        phone=PHONE,
        state=DeliveryState.FAILED,
        code="MK:0001",
        at=server.message(failed).received_at,
        reference="ww-b",
    )
    assert provider.receipts(since=datetime.now(UTC) + timedelta(minutes=1), phones=[PHONE]) == []


def test_receipts_page_through_and_cover_earlier_days(server: AliyunSmsServer) -> None:
    now = datetime.now(BEIJING).replace(microsecond=0)
    for day, count in ((2, 3), (0, 120)):
        for i in range(count):
            server.messages.append(
                StoredSms(
                    biz_id=f"{day}{i:05d}^0",
                    phone=PHONE,
                    sign_name=SIGN,
                    template_code="SMS_460001",
                    params={},
                    out_id=f"d{day}-{i}",
                    content="【野保监测】…",
                    sent_at=now - timedelta(days=day),
                    send_status=3,
                    err_code="DELIVERED",
                    received_at=now - timedelta(days=day),
                )
            )
    provider = make_provider(server)

    receipts = provider.receipts(since=now - timedelta(days=2, minutes=1), phones=[PHONE])

    assert len(receipts) == 123
    assert len({r.reference for r in receipts}) == 123
    queries = [r.query for r in server.requests]
    assert {q["SendDate"] for q in queries} == {
        (now - timedelta(days=d)).strftime("%Y%m%d") for d in (0, 1, 2)
    }
    assert max(int(q["CurrentPage"]) for q in queries) == 3  # 120 rows, 50 a page


def test_receipts_query_failure_is_a_provider_error(server: AliyunSmsServer) -> None:
    server.fail_next(1)
    with pytest.raises(ProviderError) as caught:
        make_provider(server).receipts(since=datetime.now(UTC), phones=[PHONE])
    assert caught.value.retryable and caught.value.code == "InternalError"


# -- push callbacks --------------------------------------------------------------------------

# Aliyun's documented HTTP batch push bodies (help.aliyun.com/zh/sms/developer-reference/
# smsreport-2 and the SmsUp page, help.aliyun.com/knowledge_detail/60127).
DOC_SMS_REPORT = """[
  {
    "phone_number" : "1381111****",
    "send_time" : "2017-01-01 00:00:00",
    "report_time" : "2017-01-01 00:00:00",
    "success" : true,
    "err_code" : "DELIVERED",
    "err_msg" : "用户接收成功",
    "sms_size" : "1",
    "biz_id" : "12345",
    "out_id" : "67890"
  }
]"""
DOC_SMS_UP = """[ { "phone_number" : "1381111****", "send_time" : "2017-09-01 00:00:00",
"content" : "内容", "sign_name" : "签名", "dest_code" : "1234", "sequence_id" : 1234567890 } ]"""


def test_parse_documented_report_callback() -> None:
    failed = json.loads(DOC_SMS_REPORT)[0] | {
        "success": False,
        "err_code": "MK:0001",
        "biz_id": "12346",
        "report_time": "2017-01-01 00:00:07",
    }
    body = json.dumps([*json.loads(DOC_SMS_REPORT), failed], ensure_ascii=False).encode()

    assert parse_report_callback(DOC_SMS_REPORT.encode()) == [
        Receipt(
            provider="aliyun",
            message_id="12345",
            phone="1381111****",
            state=DeliveryState.DELIVERED,
            code="DELIVERED",
            at=datetime(2017, 1, 1, 0, 0, 0, tzinfo=BEIJING),
            reference="67890",
        )
    ]
    second = parse_report_callback(body)[1]
    assert second.state is DeliveryState.FAILED
    assert second.code == "MK:0001"
    assert second.at == datetime(2017, 1, 1, 0, 0, 7, tzinfo=BEIJING)


def test_parse_documented_reply_callback() -> None:
    [reply] = parse_reply_callback(DOC_SMS_UP.encode())

    assert reply == Reply(
        provider="aliyun",
        phone="1381111****",
        text="内容",
        at=datetime(2017, 9, 1, tzinfo=BEIJING),
        extra={"sign_name": "签名", "dest_code": "1234", "sequence_id": "1234567890"},
    )
    # The oldest SmsUp page gives send_time as 20150101120000.
    old = b'[{"phone_number": "13800138000", "send_time": "20150101120000", "content": "1 3527",'
    old += b' "dest_code": "123456", "sequence_id": "123456"}]'
    assert parse_reply_callback(old)[0].at == datetime(2015, 1, 1, 12, tzinfo=BEIJING)


@pytest.mark.parametrize(
    "body", [b"not json", b'"a string"', b"[1, 2]", b'[{"phone_number": "1"}]', b"\xff\xfe"]
)
def test_malformed_report_callback_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_report_callback(body)


def test_callback_response_is_what_aliyun_expects() -> None:
    assert CALLBACK_RESPONSE == {"code": 0, "msg": "成功"}
    assert json.loads(CALLBACK_RESPONSE_BODY) == CALLBACK_RESPONSE


def test_server_pushes_report_and_reply_callbacks(server: AliyunSmsServer) -> None:
    provider = make_provider(server)
    biz_id = provider.submit(alert("ww-push")).message_id
    server.mark_delivered(biz_id)
    receiver = CallbackReceiver(
        receipt_path="/aliyun/report",
        parse_receipts=parse_report_callback,
        parse_replies=parse_reply_callback,
        answer=CALLBACK_RESPONSE,
    )
    try:
        status, body = server.post_report(receiver.url("/aliyun/report"), [biz_id])
        assert status == 200 and json.loads(body) == CALLBACK_RESPONSE
        status, body = server.post_reply(receiver.url("/aliyun/reply"), PHONE, "1 3527")
        assert status == 200 and json.loads(body) == CALLBACK_RESPONSE
    finally:
        receiver.close()

    [receipt] = receiver.receipts
    assert (receipt.message_id, receipt.reference, receipt.state, receipt.phone) == (
        biz_id,
        "ww-push",
        DeliveryState.DELIVERED,
        PHONE,
    )
    [reply] = receiver.replies
    assert (reply.phone, reply.text, reply.extra["sign_name"]) == (PHONE, "1 3527", SIGN)
    assert reply.at is not None and reply.at.tzinfo is BEIJING


# -- settings --------------------------------------------------------------------------------


def test_settings_defaults_and_strictness() -> None:
    settings = AliyunSettings(access_key_id=KEY_ID, sign_name=SIGN, templates=TEMPLATES)
    assert settings.endpoint == "dysmsapi.aliyuncs.com"
    assert settings.protocol == "https"
    assert settings.region == "cn-hangzhou"
    assert settings.daily_cap_per_number == 50
    assert settings.max_param_chars == 35
    base = {"access_key_id": KEY_ID, "sign_name": SIGN, "templates": TEMPLATES}
    with pytest.raises(pydantic.ValidationError):  # the secret itself never goes in the config
        AliyunSettings.model_validate(base | {"access_key_secret": "x"})
    with pytest.raises(pydantic.ValidationError):
        AliyunSettings.model_validate(base | {"protocol": "ftp"})
    with pytest.raises(pydantic.ValidationError):
        AliyunSettings.model_validate(base | {"templates": {}})


def test_missing_secret_is_refused_at_construction() -> None:
    settings = AliyunSettings(
        access_key_id=KEY_ID, access_key_secret_env=SECRET_ENV, sign_name=SIGN, templates=TEMPLATES
    )
    with pytest.raises(ProviderError) as caught:
        AliyunProvider(settings, environ={})
    assert caught.value.code == "MissingSecret" and not caught.value.retryable
