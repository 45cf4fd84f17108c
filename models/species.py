"""Species catalogue: the station's species list with protection level, risk group and family."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

logger = logging.getLogger(__name__)

CATALOGUE_RESOURCE = ("catalogue", "species.csv")
REQUIRED_COLUMNS = (
    "chinese_name",
    "scientific_name",
    "english_name",
    "protection_level",
    "risk_group",
)
# family/family_zh are optional so that a station can load a list in the shared five-column
# format (DOMAIN.md); rows without them cannot be rolled up to, or looked up by, family.
OPTIONAL_COLUMNS = ("family", "family_zh", "genus_zh", "synonyms")
SYNONYM_SEPARATOR = ";"

RiskGroup = Literal["A", "G", "P", "H", "S", "R", "O", "M", "X"]
ProtectionLevel = Literal["I", "II"]
TaxonRank = Literal["species", "genus", "family"]
T = TypeVar("T")

RISK_GROUPS: dict[str, tuple[str, str]] = {
    "A": ("雁鸭类", "ducks, geese and swans"),
    "G": ("鸥类", "gulls and terns"),
    "P": ("䴙䴘类", "grebes"),
    "H": ("鹭鹮鹳类", "herons, ibises and storks"),
    "S": ("鸻鹬类", "shorebirds"),
    "R": ("猛禽", "raptors"),
    "O": ("其他鸟类", "other birds"),
    "M": ("兽类", "mammals"),
    "X": ("爬行类", "reptiles"),
}
# Groups provincial notices name as susceptible to avian influenza (DOMAIN.md); a station may
# widen this (e.g. add H at a heronry) in its configuration.
HIGH_RISK_GROUPS: frozenset[str] = frozenset({"A", "G", "P"})
BIRD_RISK_GROUPS: frozenset[str] = frozenset({"A", "G", "P", "H", "S", "R", "O"})

Name = Annotated[str, Field(min_length=1, max_length=120)]
ScientificName = Annotated[
    str, Field(min_length=3, max_length=120, pattern=r"^[A-Z][a-z]+( [a-z×-]+)+$")
]


class CatalogueError(ValueError):
    """The catalogue file is unreadable or a row is malformed (the message names the line)."""


def _key(name: str) -> str:
    """Lookup key for a scientific name: case- and whitespace-insensitive."""
    return " ".join(name.split()).casefold()


class Species(BaseModel):
    """One species of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chinese_name: Name
    scientific_name: ScientificName
    english_name: Name
    protection_level: ProtectionLevel | None = Field(
        default=None, description="national protection level under the 2021 list (I or II)"
    )
    risk_group: RiskGroup = Field(description="risk group code, see RISK_GROUPS")
    family: Annotated[str, Field(pattern=r"^$|^[A-Z][a-z]+dae$")] = Field(
        default="", description="scientific family name, e.g. Anatidae ('' when not given)"
    )
    family_zh: Annotated[str, Field(max_length=20, pattern=r"^$|^.+科$")] = Field(
        default="", description="Chinese family name, e.g. 鸭科 ('' when not given)"
    )
    genus_zh: Annotated[str, Field(max_length=20, pattern=r"^$|属$")] | None = None
    synonyms: tuple[ScientificName, ...] = Field(
        default=(), description="other scientific names (older or lumped) that mean this species"
    )

    @field_validator("protection_level", "genus_zh", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _family_pair(self) -> Species:
        if bool(self.family) != bool(self.family_zh):
            raise ValueError("family and family_zh are given together or not at all")
        return self

    @field_validator("synonyms", mode="before")
    @classmethod
    def _split_synonyms(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(SYNONYM_SEPARATOR) if s.strip())
        return value

    @property
    def genus(self) -> str:
        """Genus: the first word of the scientific name."""
        return self.scientific_name.split()[0]

    @property
    def is_bird(self) -> bool:
        """True for the bird risk groups (everything except mammals and reptiles)."""
        return self.risk_group in BIRD_RISK_GROUPS

    @property
    def nationally_protected(self) -> bool:
        """True when listed as national class I or II (国家一级/二级)."""
        return self.protection_level is not None

    @property
    def risk_group_zh(self) -> str:
        """Chinese name of the risk group, e.g. 雁鸭类."""
        return RISK_GROUPS[self.risk_group][0]


@dataclass(frozen=True, slots=True)
class Taxon:
    """A species, genus or family of the catalogue with what all its catalogue species share.

    A classifier that cannot tell the species reports a genus or family (roll-up); the rules
    still need its protection level and risk group. They are set only when every catalogue
    species of the taxon has the same one (None when they differ).
    """

    scientific_name: str
    rank: TaxonRank
    chinese_name: str  # 大天鹅; 天鹅属; 鸭科
    english_name: str  # Whooper Swan; Cygnus sp.; Anatidae sp.
    protection_level: ProtectionLevel | None
    risk_group: RiskGroup | None
    species: tuple[Species, ...]

    @property
    def display_zh(self) -> str:
        """The name a person reads: the species, or e.g. 天鹅属（未定种） as the roll-up says."""
        return self.chinese_name if self.rank == "species" else f"{self.chinese_name}（未定种）"


def _shared(values: set[T]) -> T | None:
    """The one value all members share, None when they differ."""
    return next(iter(values)) if len(values) == 1 else None


class Catalogue:
    """The species list, indexed by scientific name (and synonyms), genus and family."""

    def __init__(self, species: list[Species]) -> None:
        self._species = list(species)
        self._by_name: dict[str, Species] = {}
        for sp in self._species:
            for name in (sp.scientific_name, *sp.synonyms):
                other = self._by_name.setdefault(_key(name), sp)
                if other is not sp:
                    raise CatalogueError(
                        f"name {name!r} of {sp.scientific_name} is already used by "
                        f"{other.scientific_name}"
                    )

    def __len__(self) -> int:
        return len(self._species)

    def __iter__(self) -> Iterator[Species]:
        return iter(self._species)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _key(name) in self._by_name

    def get(self, scientific_name: str) -> Species | None:
        """The species with this scientific name or synonym (case-insensitive), or None."""
        return self._by_name.get(_key(scientific_name))

    def by_genus(self, genus: str) -> list[Species]:
        """Species of a genus (case-insensitive), in catalogue order."""
        key = genus.strip().casefold()
        return [sp for sp in self._species if sp.genus.casefold() == key]

    def by_family(self, family: str) -> list[Species]:
        """Species of a family, by scientific (Ardeidae) or Chinese (鹭科) name."""
        key = family.strip().casefold()
        if not key:
            return []
        return [sp for sp in self._species if key in (sp.family.casefold(), sp.family_zh)]

    def by_risk_group(self, group: str) -> list[Species]:
        """Species of one risk group code (A, G, P, ...)."""
        return [sp for sp in self._species if sp.risk_group == group]

    def genus_names(self) -> Mapping[str, tuple[str | None, str, str]]:
        """Genus -> (genus_zh or None, family, family_zh) for every genus in the catalogue."""
        out: dict[str, tuple[str | None, str, str]] = {}
        for sp in self._species:
            known = out.get(sp.genus)
            if known is None or (known[0] is None and sp.genus_zh) or (not known[1] and sp.family):
                out[sp.genus] = (sp.genus_zh, sp.family, sp.family_zh)
        return out

    def family_zh(self, family: str) -> str | None:
        """Chinese name of a scientific family name, if any catalogue species belongs to it."""
        for sp in self._species:
            if family and sp.family == family:
                return sp.family_zh
        return None

    def taxon(self, name: str) -> Taxon | None:
        """A species (by name or synonym), else a genus, else a family (Anatidae or 鸭科).

        Protection level and risk group of a genus or family are those ALL its catalogue
        species share; its Chinese name is the genus_zh of the catalogue (天鹅属) or family_zh.
        """
        sp = self.get(name)
        if sp is not None:
            return Taxon(
                sp.scientific_name,
                "species",
                sp.chinese_name,
                sp.english_name,
                sp.protection_level,
                sp.risk_group,
                (sp,),
            )
        word = name.strip()
        if not word or " " in word:
            return None
        members = self.by_genus(word)
        if members:
            genus = members[0].genus
            genus_zh = next((m.genus_zh for m in members if m.genus_zh), None)
            family_zh = next((m.family_zh for m in members if m.family_zh), "")
            zh = genus_zh or (f"{family_zh} {genus} 属" if family_zh else f"{genus} 属")
            rank: TaxonRank = "genus"
            scientific, english = genus, f"{genus} sp."
        else:
            members = self.by_family(word)
            if not members:
                return None
            rank, zh = "family", members[0].family_zh
            scientific = members[0].family
            english = f"{scientific} sp."
        levels: set[ProtectionLevel | None] = {m.protection_level for m in members}
        groups: set[RiskGroup] = {m.risk_group for m in members}
        level, group = _shared(levels), _shared(groups)
        return Taxon(scientific, rank, zh, english, level, group, tuple(members))

    def protected(self) -> list[Species]:
        """Nationally protected species (class I or II)."""
        return [sp for sp in self._species if sp.nationally_protected]

    def high_risk(self, groups: frozenset[str] = HIGH_RISK_GROUPS) -> list[Species]:
        """Species in the avian-influenza high-risk groups."""
        return [sp for sp in self._species if sp.risk_group in groups]


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_catalogue(text: str, source: str = "<catalogue>") -> Catalogue:
    """Parse catalogue CSV text; CatalogueError names the line of a malformed row."""
    reader = csv.DictReader(text.splitlines())
    columns = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise CatalogueError(f"{source}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise CatalogueError(f"{source}: unknown column(s) {', '.join(unknown)}")
    species: list[Species] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise CatalogueError(f"{source} line {line}: expected {len(columns)} fields")
        if not any(v.strip() for v in row.values()):
            continue
        try:
            sp = Species.model_validate({k: v.strip() for k, v in row.items()})
        except ValidationError as exc:
            raise CatalogueError(f"{source} line {line}: {_describe(exc)}") from exc
        first = seen.setdefault(_key(sp.scientific_name), line)
        if first != line:
            raise CatalogueError(
                f"{source} line {line}: {sp.scientific_name} already listed on line {first}"
            )
        species.append(sp)
    if not species:
        raise CatalogueError(f"{source}: no species")
    try:
        return Catalogue(species)
    except CatalogueError as exc:
        raise CatalogueError(f"{source}: {exc}") from exc


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Load a catalogue CSV: the station's own copy at `path`, else the packaged one."""
    if path is None:
        res = resources.files(__package__ or "models").joinpath(*CATALOGUE_RESOURCE)
        text, source = res.read_text(encoding="utf-8"), "packaged catalogue/species.csv"
    else:
        try:
            text, source = path.read_text(encoding="utf-8-sig"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogueError(f"cannot read species catalogue {path}: {exc}") from exc
    catalogue = parse_catalogue(text, source)
    logger.info("loaded %d species from %s", len(catalogue), source)
    return catalogue
