"""The species catalogue: packaged data, lookups, synonyms and errors for malformed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.species import (
    HIGH_RISK_GROUPS,
    RISK_GROUPS,
    Catalogue,
    CatalogueError,
    load_catalogue,
    parse_catalogue,
)

HEADER = (
    "chinese_name,scientific_name,english_name,protection_level,risk_group,family,family_zh,"
    "genus_zh,synonyms\n"
)
LABELS = Path(__file__).resolve().parents[2] / "models" / "labels" / "inat_bird_labels.txt"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """The packaged catalogue."""
    return load_catalogue()


def test_packaged_catalogue_loads(catalogue: Catalogue) -> None:
    assert 85 <= len(catalogue) <= 120
    assert {sp.risk_group for sp in catalogue} == set(RISK_GROUPS)
    assert all(sp.family.endswith("dae") and sp.family_zh.endswith("科") for sp in catalogue)


def test_protection_and_risk_lookups(catalogue: Catalogue) -> None:
    ibis = catalogue.get("nipponia NIPPON")
    assert ibis is not None
    assert (ibis.chinese_name, ibis.protection_level, ibis.risk_group) == ("朱鹮", "I", "H")
    assert ibis.nationally_protected and ibis.is_bird
    assert (ibis.family, ibis.family_zh, ibis.genus) == ("Threskiornithidae", "鹮科", "Nipponia")
    mallard = catalogue.get("Anas platyrhynchos")
    assert mallard is not None and not mallard.nationally_protected
    assert mallard.risk_group in HIGH_RISK_GROUPS and mallard.risk_group_zh == "雁鸭类"
    alligator = catalogue.get("Alligator sinensis")
    assert alligator is not None and not alligator.is_bird and alligator.family_zh == "鼍科"
    assert sorted(HIGH_RISK_GROUPS) == ["A", "G", "P"]
    assert RISK_GROUPS["S"][0] == "鸻鹬类"
    high = catalogue.high_risk()
    assert high and all(sp.risk_group in {"A", "G", "P"} for sp in high)
    assert "朱鹮" in {sp.chinese_name for sp in catalogue.protected()}
    assert catalogue.get("Passer domesticus") is None


def test_genus_and_family_lookups(catalogue: Catalogue) -> None:
    egrets = {sp.chinese_name for sp in catalogue.by_genus("egretta")}
    assert egrets == {"白鹭", "黄嘴白鹭"}
    herons = catalogue.by_family("Ardeidae")
    assert herons == catalogue.by_family("鹭科")
    assert {"苍鹭", "夜鹭", "池鹭"} <= {sp.chinese_name for sp in herons}
    assert {sp.family for sp in catalogue.by_risk_group("G")} == {"Laridae"}
    assert catalogue.genus_names()["Egretta"] == ("白鹭属", "Ardeidae", "鹭科")


@pytest.mark.parametrize(
    ("synonym", "chinese"),
    [
        ("Casmerodius albus", "大白鹭"),
        ("Egretta alba", "大白鹭"),
        ("Anas penelope", "赤颈鸭"),  # iNat 2017 label for Mareca penelope
        ("Anas strepera", "赤膀鸭"),
        ("Anas clypeata", "琵嘴鸭"),
        ("Anas querquedula", "白眉鸭"),
        ("Streptopelia chinensis", "珠颈斑鸠"),
        ("Larus ridibundus", "红嘴鸥"),
        ("Porphyrio poliocephalus", "紫水鸡"),
        ("pica PICA", "喜鹊"),
    ],
)
def test_synonyms_resolve(catalogue: Catalogue, synonym: str, chinese: str) -> None:
    species = catalogue.get(synonym)
    assert species is not None and species.chinese_name == chinese
    assert synonym in catalogue


def test_inat_label_names_resolve(catalogue: Catalogue) -> None:
    """Catalogue birds the classifier knows are found under its own (2017-era) label names."""
    names = [line.split(" (")[0] for line in LABELS.read_text("utf-8").splitlines()]
    found = {sp.scientific_name for name in names if (sp := catalogue.get(name)) is not None}
    for expected in ("Mareca penelope", "Spatula clypeata", "Ardea alba", "Spilopelia chinensis"):
        assert expected in found
    assert len(found) >= 50


def test_malformed_row_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "station.csv"
    path.write_text(
        HEADER
        + "白鹭,Egretta garzetta,Little Egret,,H,Ardeidae,鹭科,白鹭属,\n"
        + "坏鸟,Badus birdus,Bad Bird,III,H,Ardeidae,鹭科,,\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError, match=r"line 3: protection_level"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ("白鹭,Egretta garzetta,Little Egret,,Z,Ardeidae,鹭科,,\n", r"line 2: risk_group"),
        ("白鹭,egretta,Little Egret,,H,Ardeidae,鹭科,,\n", r"line 2: scientific_name"),
        ("白鹭,Egretta garzetta,Little Egret,,H,Ardeidae\n", r"line 2: expected 9 fields"),
        (
            "白鹭,Egretta garzetta,Little Egret,,H,Ardeidae,鹭科,,\n"
            "小白鹭,Egretta garzetta,Little Egret,,H,Ardeidae,鹭科,,\n",
            r"line 3: Egretta garzetta already listed on line 2",
        ),
        (
            "白鹭,Egretta garzetta,Little Egret,,H,Ardeidae,鹭科,,Ardea alba\n"
            "大白鹭,Ardea alba,Great Egret,,H,Ardeidae,鹭科,,\n",
            r"Ardea alba",
        ),
    ],
)
def test_bad_rows(rows: str, match: str) -> None:
    with pytest.raises(CatalogueError, match=match):
        parse_catalogue(HEADER + rows)


def test_columns_checked_and_optional_columns_optional(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="missing column"):
        parse_catalogue("chinese_name,scientific_name\n白鹭,Egretta garzetta\n")
    with pytest.raises(CatalogueError, match="unknown column"):
        parse_catalogue(HEADER.strip() + ",colour\n")
    minimal = parse_catalogue(
        "chinese_name,scientific_name,english_name,protection_level,risk_group,family,family_zh\n"
        "白鹭,Egretta garzetta,Little Egret,,H,Ardeidae,鹭科\n"
    )
    egret = minimal.get("Egretta garzetta")
    assert egret is not None and egret.genus_zh is None and egret.synonyms == ()
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.csv")


def test_station_list_in_the_shared_five_column_format_loads(shared_dir: Path) -> None:
    """DOMAIN.md's species.csv has no family columns; a station editing its own copy of it
    must be able to load it (roll-up to a family is then unavailable)."""
    station = load_catalogue(shared_dir / "species.csv")
    assert len(station) == len(load_catalogue())
    swan = station.get("Cygnus cygnus")
    assert swan is not None and (swan.protection_level, swan.risk_group) == ("II", "A")
    assert swan.family == "" and swan.family_zh == ""
    assert station.by_family("") == [] and station.family_zh("") is None
    assert station.taxon("Anatidae") is None  # no families known
    genus = station.taxon("Cygnus")
    assert genus is not None and (genus.protection_level, genus.risk_group) == ("II", "A")


def test_family_needs_its_chinese_name() -> None:
    header = "chinese_name,scientific_name,english_name,protection_level,risk_group,family\n"
    with pytest.raises(CatalogueError, match=r"line 2: .*family_zh"):
        parse_catalogue(header + "白鹭,Egretta garzetta,Little Egret,,H,Ardeidae\n")


def test_taxon_shares_what_all_its_species_share(catalogue: Catalogue) -> None:
    """A classifier roll-up to a genus or family keeps protection level and risk group when
    every catalogue species of it has the same one."""
    swans = catalogue.taxon("cygnus")
    assert swans is not None
    assert (swans.scientific_name, swans.rank, swans.chinese_name, swans.display_zh) == (
        "Cygnus",
        "genus",
        "天鹅属",
        "天鹅属（未定种）",
    )
    assert (swans.protection_level, swans.risk_group, len(swans.species)) == ("II", "A", 2)
    storks = catalogue.taxon("Ciconia")
    assert storks is not None and storks.protection_level == "I"
    geese = catalogue.taxon("Anser")  # swan goose class II, bean goose not protected
    assert geese is not None and geese.protection_level is None and geese.risk_group == "A"
    ducks = catalogue.taxon("Anatidae")
    assert ducks is not None and ducks == catalogue.taxon("鸭科")
    assert (ducks.rank, ducks.chinese_name, ducks.risk_group, ducks.protection_level) == (
        "family",
        "鸭科",
        "A",
        None,
    )
    mallard = catalogue.taxon("Anas platyrhynchos")
    assert mallard is not None and (mallard.rank, mallard.display_zh) == ("species", "绿头鸭")
    assert catalogue.taxon("Passer domesticus") is None and catalogue.taxon("Nosuchgenus") is None
