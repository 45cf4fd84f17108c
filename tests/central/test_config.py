"""Loading the central YAML config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import sessionmaker

from central.alerts import backend_keys
from central.config import (
    MIN_TOKEN_CHARS,
    PASSWORD_ENV,
    SMS_BACKENDS,
    CentralConfig,
    ConfigError,
    load_config,
    new_staff_token,
    token_sha256,
)
from central.ingest import Ingestor
from models.species import Catalogue, load_catalogue

EXAMPLE = Path(__file__).resolve().parents[2] / "central" / "examples" / "central.yaml"
SHIPPED_CATALOGUE = Path(__file__).resolve().parents[2] / "models" / "catalogue" / "species.csv"
PHONES = {"alerts": {"duty_phones": ["13800000000"]}}


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    cfg = load_config(EXAMPLE)
    assert cfg.sites["changxing"].name_zh == "长兴扬子鳄国家级自然保护区"
    assert cfg.sites["xiazhuhu"].name_en == "Xiazhu Lake Wetland, Deqing"
    assert cfg.timezone == "Asia/Shanghai" and cfg.report.cutoff == "15:00"
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.database_url == f"sqlite:///{Path('data') / 'central.db'}"


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  hots: x\ncolour: red\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "unknown key 'mqtt.hots'" in str(err.value)
    assert "unknown key 'colour'" in str(err.value)


def test_unquoted_cutoff_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "data_dir: /srv/ww\nreport:\n  cutoff: 14:30\nalerts:\n  duty_phones: ['13800000000']\n",
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert cfg.report.cutoff == "14:30"
    assert (cfg.report.grace_minutes, cfg.report.max_catch_up_days) == (10, 62)
    assert cfg.report_dir == Path("/srv/ww/reports")
    assert cfg.sms_file == Path("/srv/ww/sms.jsonl")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"mqtt": {"workers": 2}}, "mqtt"),  # several workers need a share group
        ({"mqtt": {"port": 0}}, "mqtt.port"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"alerts": {"duty_phones": ["not a phone"]}}, "alerts.duty_phones.0"),
        ({"sites": {"Bad Id": {"name_zh": "x"}}}, "sites.Bad Id"),
        ({"report": {"cutoff": "25:00"}}, "report.cutoff"),
        ({"report": {"grace_minutes": -1}}, "report.grace_minutes"),
        ({"report": {"grace_minutes": 1441}}, "report.grace_minutes"),
        ({"report": {"max_catch_up_days": 0}}, "report.max_catch_up_days"),
        ({"report": {"max_catch_up_days": 367}}, "report.max_catch_up_days"),
        ({"staff": [{"name": "王五", "token_sha256": "plain-token"}]}, "staff.0.token_sha256"),
        ({"staff": [{"name": "王五", "token": "plain"}]}, "staff.0.token"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, data: dict[str, object], where: str) -> None:
    """Each case is valid but for one key, and the error names that key."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**PHONES, **data}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{where}" in str(err.value)


def _load(tmp_path: Path, text: str) -> CentralConfig:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_reviewer_reproduction_fails_at_load_naming_every_problem(tmp_path: Path) -> None:
    """The reviewer's cfg_late.py: all four were accepted and failed only after start-up."""
    with pytest.raises(ConfigError) as err:
        _load(
            tmp_path,
            "alerts:\n  sms_backend: smsgateway\n  duty_phones: []\n"
            "catalogue: /nonexistent.csv\n"
            "evidence:\n  uploaders: [{site: s1, node: n1, token_env: WW_TEST_UNSET_TOKEN}]\n",
        )
    text = str(err.value)
    assert "未知的短信后端 'smsgateway'（可用：file）" in text
    assert "物种名录 /nonexistent.csv 无法使用" in text
    assert "$WW_TEST_UNSET_TOKEN 未设置" in text


def test_sms_backend_keys_match_the_registry() -> None:
    """The config names the back-ends without importing them; this keeps the two in step."""
    assert sorted(SMS_BACKENDS) == backend_keys()


def test_empty_duty_phones_need_an_explicit_opt_out(tmp_path: Path) -> None:
    for text in ("{}\n", "alerts:\n  duty_phones: []\n"):
        with pytest.raises(ConfigError, match=r"alerts: .*duty_phones 为空") as err:
            _load(tmp_path, text)
        assert "allow_no_duty_phones" in str(err.value)
    cfg = _load(tmp_path, "alerts:\n  duty_phones: []\n  allow_no_duty_phones: true\n")
    assert cfg.alerts.duty_phones == []


def test_catalogue_must_load(tmp_path: Path) -> None:
    bad = tmp_path / "species.csv"
    bad.write_text("name\n白鹭\n", encoding="utf-8")
    for path in (tmp_path / "missing.csv", bad, tmp_path):
        with pytest.raises(ConfigError, match=r"catalogue: .*物种名录 .* 无法使用"):
            _load(tmp_path, f"catalogue: {path}\nalerts:\n  duty_phones: ['13800000000']\n")


def test_catalogue_that_loads_is_kept(tmp_path: Path) -> None:
    good = tmp_path / "species.csv"
    good.write_text(SHIPPED_CATALOGUE.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = _load(tmp_path, f"catalogue: {good}\nalerts:\n  duty_phones: ['13800000000']\n")
    assert cfg.catalogue == good


UPLOADERS = (
    "alerts:\n  duty_phones: ['13800000000']\nevidence:\n  uploaders:\n"
    "    - {site: changxing, node: cx-01, token_env: WW_T1}\n"
    "    - {site: xiazhuhu, node: xz-01, token_env: WW_T2}\n"
)


@pytest.mark.parametrize(
    ("t1", "t2", "says"),
    [
        (None, "b" * MIN_TOKEN_CHARS, "$WW_T1 未设置"),
        ("", "b" * MIN_TOKEN_CHARS, "$WW_T1 未设置"),
        ("short", "b" * MIN_TOKEN_CHARS, f"$WW_T1 过短（至少 {MIN_TOKEN_CHARS} 个字符）"),
        ("a" * MIN_TOKEN_CHARS, "a" * MIN_TOKEN_CHARS, "xiazhuhu/xz-01 与 changxing/cx-01"),
    ],
)
def test_upload_tokens_checked_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, t1: str | None, t2: str, says: str
) -> None:
    if t1 is None:
        monkeypatch.delenv("WW_T1", raising=False)
    else:
        monkeypatch.setenv("WW_T1", t1)
    monkeypatch.setenv("WW_T2", t2)
    with pytest.raises(ConfigError, match="evidence: ") as err:
        _load(tmp_path, UPLOADERS)
    assert says in str(err.value)
    for secret in {t1, t2} - {None, "", "short"}:
        assert str(secret) not in str(err.value), "an error message must not leak a token"


def test_good_upload_tokens_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_T1", "a" * MIN_TOKEN_CHARS)
    monkeypatch.setenv("WW_T2", "b" * 40)
    cfg = _load(tmp_path, UPLOADERS)
    assert cfg.evidence.tokens() == {
        "a" * MIN_TOKEN_CHARS: ("changxing", "cx-01"),
        "b" * 40: ("xiazhuhu", "xz-01"),
    }


def test_staff_accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token, digest = new_staff_token()
    cfg = _load(
        tmp_path,
        f"alerts:\n  duty_phones: ['13800000000']\nstaff:\n"
        f"  - {{name: ' 王五 ', token_sha256: {digest}}}\n",
    )
    member = cfg.staff_for_token(token)
    assert member is not None and member.name == "王五"
    assert token not in repr(cfg)
    other = new_staff_token()[1]
    for staff, says in (
        ([("王五", digest), ("王五", other)], "staff 中 name 重复：王五"),
        ([("王五", digest), ("赵六", digest)], "staff 中 token_sha256 重复"),
    ):
        with pytest.raises(ValueError, match=says):
            CentralConfig.model_validate(
                {**PHONES, "staff": [{"name": n, "token_sha256": d} for n, d in staff]}
            )
    # A staff member must not hold a node's upload token (it would open the API to a node).
    monkeypatch.setenv("WW_T1", "c" * 20)
    with pytest.raises(ValueError, match="工作人员 赵六 的令牌与节点上传令牌相同"):
        CentralConfig.model_validate(
            {
                **PHONES,
                "evidence": {"uploaders": [{"site": "s1", "node": "n1", "token_env": "WW_T1"}]},
                "staff": [{"name": "赵六", "token_sha256": token_sha256("c" * 20)}],
            }
        )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_catalogue_is_parsed_once_for_every_ingest_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalogue is parsed at load time (to refuse a bad one) and once more on first use;
    every ingest worker then shares that one catalogue instead of parsing the file itself."""
    good = tmp_path / "species.csv"
    good.write_text(SHIPPED_CATALOGUE.read_text(encoding="utf-8"), encoding="utf-8")
    parsed: list[Path | None] = []

    def counting(path: Path | None = None) -> Catalogue:
        parsed.append(path)
        return load_catalogue(path)

    monkeypatch.setattr("central.config.load_catalogue", counting)
    cfg = _load(
        tmp_path,
        f"catalogue: {good}\nalerts:\n  duty_phones: ['13800000000']\n"
        "mqtt:\n  workers: 3\n  share_group: g\n",
    )
    workers = [
        Ingestor.from_config(config=cfg, session_factory=sessionmaker(), worker=n)
        for n in range(cfg.mqtt.workers)
    ]
    assert parsed == [good, good]  # the load-time check, then the shared copy
    assert all(w._catalogue is cfg.species_catalogue for w in workers)
    assert parsed == [good, good]
    assert "Egretta garzetta" in cfg.species_catalogue
