"""Node configuration: shipped examples load, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config, parse_config

EXAMPLES = Path(__file__).resolve().parents[2] / "edge" / "examples"


@pytest.mark.parametrize("name", ["changxing-node1.yaml", "xiazhuhu-node1.yaml"])
def test_examples_load(name: str) -> None:
    cfg = load_config(EXAMPLES / name)
    assert cfg.site in {"changxing", "xiazhuhu"} and cfg.cameras


def test_unknown_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "node.yaml"
    bad.write_text("site: changxing\nnode: n1\ncameras: [{id: c1}]\ndetectr: {}\n")
    with pytest.raises(ConfigError, match=r"detectr: unknown key"):
        load_config(bad)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"site": "Chang Xing", "node": "n1", "cameras": [{"id": "c"}]}, "site"),
        ({"site": "cx", "node": "n1", "cameras": []}, "cameras"),
        ({"site": "cx", "node": "n1", "cameras": [{"id": "c"}, {"id": "c"}]}, "unique"),
        (
            {"site": "cx", "node": "n1", "timezone": "Mars/Olympus", "cameras": [{"id": "c"}]},
            "time zone",
        ),
        (
            {"site": "cx", "node": "n1", "cameras": [{"id": "c", "source": "picamera:x"}]},
            "picamera",
        ),
    ],
)
def test_bad_values_are_explained(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(data)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
