"""`wildwatch gallery build`: confirmed crops in central's database become a bundle the node
loads, and the node then names the species staff taught (real crops, real model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from central.db.migrate import upgrade
from central.db.session import make_engine, make_session_factory
from edge.classify import ClassifierSettings, create, crop_box
from edge.classify.gallery import GallerySettings, build_gallery, read_bundle, with_gallery
from edge.ingest import load_image
from models.species import load_catalogue
from tests.central.gallery_events import store_event
from wildwatch.cli import cli

# The American Crow is not in the shipped catalogue: this station lists it (as Xiazhu Lake
# lists the crested ibis), and the classifier, restricted to the catalogue, cannot name it.
CROW = "Corvus brachyrhynchos"
CROW_ROW = "短嘴鸦,Corvus brachyrhynchos,American Crow,,O,Corvidae,鸦科,鸦属,"
TAUGHT = (("ct_ena24_7951.jpg", (492, 717, 791, 996)), ("ct_ena24_8200.jpg", (1, 298, 207, 506)))
QUERY = ("ct_ena24_49.jpg", (716, 1040, 1162, 1499))


def _crop_jpeg(images_dir: Path, name: str, box: tuple[int, ...]) -> bytes:
    ok, data = cv2.imencode(".jpg", crop_box(load_image(images_dir / name), box))
    assert ok
    return bytes(data.tobytes())


def test_the_gallery_built_from_confirmed_crops_names_the_taught_species_on_the_node(
    tmp_path: Path, database_url: str, images_dir: Path, models_dir: Path
) -> None:
    catalogue_csv = tmp_path / "species.csv"
    shipped = Path("models/catalogue/species.csv").read_text(encoding="utf-8")
    catalogue_csv.write_text(shipped.rstrip("\n") + "\n" + CROW_ROW + "\n", encoding="utf-8")
    upgrade(database_url)
    evidence = tmp_path / "evidence"
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine).begin() as session:
            for name, box in TAUGHT:  # the node called them "unidentified"; staff named them
                store_event(
                    session, evidence, crops=[_crop_jpeg(images_dir, name, box)], named=CROW
                )
            skipped = store_event(
                session,
                evidence,
                crops=[b"x", b"y"],
                species="Ardea alba",  # 2 crops, 1 box
            )
            # a confirmed crop whose file is not an image (a truncated upload, a bad disk):
            # left out and named, the build goes on
            unreadable = store_event(session, evidence, crops=[b"not a jpeg"], named=CROW)
    finally:
        engine.dispose()
    out = tmp_path / "gallery.zip"
    args = ["gallery", "build", "--db", database_url, "--evidence-dir", str(evidence)]
    args += ["--out", str(out), "--models", str(models_dir), "--catalogue", str(catalogue_csv)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 例 examples, 1 种 species" in result.output
    assert f"skipped {skipped}" in result.output
    assert f"skipped {unreadable}: crop IMG_0001_ab12cd34_crop0.jpg unreadable" in result.output
    assert "skipped: 2" in result.output

    catalogue = load_catalogue(catalogue_csv)
    classifier = create(ClassifierSettings(), models_dir, catalogue)
    bundle = read_bundle(out)
    assert [item.label for item in bundle.items] == [CROW, CROW]
    assert bundle.embedder_sha256 == classifier.embedder_sha256
    assert bundle.embeddings is not None and bundle.embeddings.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(bundle.embeddings, axis=1), 1.0, atol=1e-5)
    assert len(build_gallery(bundle, classifier)) == 2

    query = crop_box(load_image(images_dir / QUERY[0]), QUERY[1])
    assert classifier.classify(query).best is None  # alone, it cannot name the crow
    node = with_gallery(classifier, GallerySettings(path=out))
    best = node.classify(query).best
    assert best is not None
    assert (best.scientific_name, best.chinese_name) == (CROW, "短嘴鸦")
