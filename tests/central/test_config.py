"""Loading the central YAML config."""

from __future__ import annotations

from pathlib import Path

import pytest

from central.config import PASSWORD_ENV, CentralConfig, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "central" / "examples" / "central.yaml"


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
    path.write_text("data_dir: /srv/ww\nreport:\n  cutoff: 14:30\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.report.cutoff == "14:30"
    assert cfg.report_dir == Path("/srv/ww/reports")
    assert cfg.sms_file == Path("/srv/ww/sms.jsonl")


@pytest.mark.parametrize(
    "data",
    [
        {"mqtt": {"workers": 2}},  # several workers need a share group
        {"mqtt": {"port": 0}},
        {"timezone": "Mars/Olympus"},
        {"alerts": {"duty_phones": ["not a phone"]}},
        {"sites": {"Bad Id": {"name_zh": "x"}}},
        {"report": {"cutoff": "25:00"}},
    ],
)
def test_invalid_values_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CentralConfig.model_validate(data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
