"""`wildwatch gallery build`: the station's reference gallery from what staff confirmed.

Central finds the confirmed crops (central/gallery.py), the node's classifier embeds them
(edge/classify/gallery.py), and the result is one bundle file a node loads with `gallery.path`
(or that a model release carries). This module may import both sides; neither imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from central.db.session import make_engine, make_session_factory
from central.gallery import Taught, taught_crops
from edge.classify import Classifier, ClassifierSettings, create
from edge.classify.gallery import (
    Bundle,
    GalleryError,
    GalleryItem,
    decode_crop,
    embed,
    write_bundle,
)
from models.species import Catalogue, load_catalogue

log = logging.getLogger(__name__)


def build(
    *,
    database_url: str,
    evidence_dir: Path,
    classifier: Classifier,
    catalogue: Catalogue,
    sites: Sequence[str] | None = None,
) -> tuple[Bundle, Taught]:
    """The gallery of every confirmed bird crop, embedded by `classifier`; a crop that cannot
    be read or decoded is left out and named in `Taught.skipped` (one bad file does not stop
    the build)."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            taught = taught_crops(
                session=session, evidence_dir=evidence_dir, catalogue=catalogue, sites=sites
            )
    finally:
        engine.dispose()
    if classifier.embedder_sha256 is None:
        raise click.ClickException(f"{classifier.settings.model} computes no embeddings")
    kept: list[GalleryItem] = []
    vectors = []
    for crop in taught.crops:
        try:
            jpeg = crop.path.read_bytes()
            pixels = decode_crop(jpeg)
        except (OSError, GalleryError) as exc:
            log.warning("crop %s of %s left out: %s", crop.path, crop.source, exc)
            taught.skipped[crop.source.partition("#")[0]] = f"crop {crop.path.name} unreadable"
            continue
        kept.append(GalleryItem(crop.label, jpeg, crop.source))
        vectors.append(embed(classifier, pixels))
    items = tuple(kept)
    embeddings = np.stack(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    bundle = Bundle(items, classifier.settings.model, classifier.embedder_sha256, embeddings)
    return bundle, taught


@click.group(name="gallery")
def cli() -> None:
    """参考图库 Reference gallery: species the staff taught, for the nodes."""


@cli.command(name="build")
@click.option("--db", "database_url", required=True, help="central's database URL")
@click.option(
    "--evidence-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="central's evidence directory (where nodes' crops are stored)",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--site", "sites", multiple=True, help="only these sites (default: every site)")
@click.option(
    "--models",
    "store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="installed models (default: the registry's store)",
)
@click.option(
    "--catalogue",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="station species list CSV (default: shipped)",
)
def build_cmd(
    database_url: str,
    evidence_dir: Path,
    out: Path,
    sites: tuple[str, ...],
    store: Path | None,
    catalogue: Path | None,
) -> None:
    """Embed every confirmed bird crop and write the gallery bundle (one zip file)."""
    species = load_catalogue(catalogue)
    classifier = create(ClassifierSettings(), store, species)
    bundle, taught = build(
        database_url=database_url,
        evidence_dir=evidence_dir,
        classifier=classifier,
        catalogue=species,
        sites=sites or None,
    )
    write_bundle(out, bundle)
    kinds = len({item.label for item in bundle.items})
    click.echo(f"图库 gallery {out}: {len(bundle.items)} 例 examples, {kinds} 种 species")
    if taught.skipped:
        click.echo(f"  未采用 skipped: {len(taught.skipped)} 个事件 events")
    for event_id, reason in taught.skipped.items():
        click.echo(f"  未采用 skipped {event_id}: {reason}")
