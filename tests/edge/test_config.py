"""Node configuration: shipped examples load, mistakes are named."""

from __future__ import annotations

import re
from datetime import date
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


@pytest.mark.parametrize(
    ("north", "south", "fragment"),
    [
        ("ftp", "ftp", "cameras 'north' and 'south' share the drop folder"),
        ("ftp", "ftp/south", "of camera 'south' is inside drop folder .* of camera 'north'"),
        ("ftp/north", "ftp", "of camera 'north' is inside drop folder .* of camera 'south'"),
        ("ftp/./a/../north", "ftp/north/", "cameras 'north' and 'south' share"),
    ],
)
def test_drop_folders_must_not_coincide_or_nest(
    tmp_path: Path, north: str, south: str, fragment: str
) -> None:
    cameras = [
        {"id": "north", "drop_folder": str(tmp_path / north)},
        {"id": "south", "drop_folder": str(tmp_path / south)},
    ]
    with pytest.raises(ConfigError, match=fragment):
        parse_config({"site": "cx", "node": "n1", "cameras": cameras})


def test_neighbouring_drop_folders_are_fine(tmp_path: Path) -> None:
    cameras = [
        {"id": "cam1", "drop_folder": str(tmp_path / "drop" / "cam1")},
        {"id": "cam10", "drop_folder": str(tmp_path / "drop" / "cam10")},  # a prefix, not a parent
        {"id": "live", "source": "0"},
    ]
    cfg = parse_config({"site": "cx", "node": "n1", "cameras": cameras})
    assert [c.id for c in cfg.cameras] == ["cam1", "cam10", "live"]


def test_drop_folder_timing_and_capture_floor_are_configurable() -> None:
    cfg = parse_config(
        {
            "site": "cx",
            "node": "n1",
            "cameras": [{"id": "c"}],
            "quarantine_grace_s": 1800,
            "capture_time_floor": "2012-06-01",
        }
    )
    assert cfg.quarantine_grace_s == 1800 and cfg.capture_time_floor == date(2012, 6, 1)
    defaults = parse_config({"site": "cx", "node": "n1", "cameras": [{"id": "c"}]})
    assert defaults.quarantine_grace_s == 600 and defaults.capture_time_floor == date(2015, 1, 1)
    with pytest.raises(ConfigError, match="quarantine_grace_s"):
        parse_config(
            {"site": "cx", "node": "n1", "cameras": [{"id": "c"}], "quarantine_grace_s": -1}
        )


@pytest.mark.parametrize(
    ("rules", "key", "unknown"),
    [
        ({"cameras": {"cam9": {"disabled": ["free_roaming_dog"]}}}, "rules.cameras", "'cam9'"),
        (
            {"mortality_cluster": {"same_view": [["north", "south"], ["south", "cam9", "cam0"]]}},
            r"rules.mortality_cluster.same_view\[1\]",
            "'cam0', 'cam9'",
        ),
    ],
)
def test_rules_name_only_cameras_of_the_node(
    rules: dict[str, object], key: str, unknown: str
) -> None:
    """A misspelt camera id in the rules would be silently ignored: start-up refuses it, naming
    the id, Chinese first."""
    data = {"site": "cx", "node": "n1", "cameras": [{"id": "north"}, {"id": "south"}]}
    with pytest.raises(ConfigError) as refused:
        parse_config({**data, "rules": rules})
    message = str(refused.value)
    assert re.search(f"{key} 中的相机 {unknown} 不在本节点的 cameras 中", message), message
    assert re.search(f"/ {key} names camera\\(s\\) {unknown} this node does not have", message)
    fine = {"cameras": {"south": {}}, "mortality_cluster": {"same_view": [["north", "south"]]}}
    assert parse_config({**data, "rules": fine}).rules.mortality_cluster.same_view == [
        ["north", "south"]
    ]
