"""Model registry: manifest, import, verify, pull over real HTTP, lookup and the CLI."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from models import registry
from models.cli import cli
from models.registry import (
    ChecksumError,
    DownloadError,
    FileStatus,
    ModelNotInstalled,
    NothingToImport,
    UnknownModel,
    import_dir,
    labels_path,
    load_labels,
    load_manifest,
    model_path,
    pull,
    verify,
)

YOLOX = "yolox_nano_416_coco.onnx"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def serve() -> Iterator[Callable[[Path], str]]:
    """Start a real HTTP server on 127.0.0.1 serving a directory; returns its base URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(root: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def mirror_dir(tmp_path: Path, shared_dir: Path) -> Path:
    """A writable copy of the shared models folder."""
    dest = tmp_path / "mirror"
    shutil.copytree(shared_dir / "models", dest)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


def test_manifest_lists_the_models_with_pinned_files() -> None:
    manifest = load_manifest()
    ids = {m.id for m in manifest.models}
    assert ids == {
        "yolox_nano_416_coco",
        "nanodet_m_416_coco",
        "mdlite_yolox_tiny_416",
        "mdlite_yolox_tiny_640",
        "inat_bird_mobilenetv2_224",
    }
    decoders = {m.decoder for m in manifest.models}
    assert decoders == {"yolox", "nanodet", "mdlite", "inat_classifier"}
    for spec in manifest.models:
        assert spec.labels in {a.file for a in spec.files}
    with pytest.raises(UnknownModel):
        manifest.get("no_such_model")


def test_manifest_hashes_match_shared_sha256sums(shared_dir: Path) -> None:
    lines = (shared_dir / "models" / "SHA256SUMS").read_text().splitlines()
    sums = {name: digest for digest, name in (line.split() for line in lines)}
    for name, artefact in load_manifest().artefacts().items():
        if artefact.bundled and name not in sums:
            continue  # our own label map (mdlite.names), checked against the package copy below
        assert sums[name] == artefact.sha256


def test_bundled_label_maps_match_manifest() -> None:
    root = Path(registry.__file__).parent / "labels"
    for artefact in load_manifest().artefacts().values():
        if artefact.bundled:
            assert registry.sha256_file(root / artefact.file) == artefact.sha256


def test_import_from_shared_installs_and_verifies(tmp_path: Path, shared_dir: Path) -> None:
    store = tmp_path / "store"
    installed = import_dir(shared_dir / "models", store)
    assert set(installed) == set(load_manifest().artefacts())
    assert all(r.ok for r in verify(store))
    assert model_path("yolox_nano_416_coco", store) == store / YOLOX
    assert labels_path("nanodet_m_416_coco", store) == store / "coco80.names"
    labels = load_labels("yolox_nano_416_coco", store)
    assert len(labels) == 80 and labels[14] == "bird"
    assert len(load_labels("inat_bird_mobilenetv2_224", store)) == 965
    # No temporary files are left behind.
    assert not [p for p in store.iterdir() if p.name.startswith(".")]


def test_import_rejects_corrupt_file_and_leaves_nothing(tmp_path: Path, mirror_dir: Path) -> None:
    corrupt = mirror_dir / YOLOX
    data = bytearray(corrupt.read_bytes())
    data[1000] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    store = tmp_path / "store"
    with pytest.raises(ChecksumError) as info:
        import_dir(mirror_dir, store)
    assert info.value.file == YOLOX
    assert YOLOX in str(info.value)
    assert info.value.expected in str(info.value) and info.value.actual in str(info.value)
    assert not (store / YOLOX).exists()
    assert not [p for p in store.iterdir() if p.name.startswith(f".{YOLOX}")]


def test_import_partial_dir_reports_missing(
    tmp_path: Path, shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(shared_dir / "models" / YOLOX, src / YOLOX)
    store = tmp_path / "store"
    installed = import_dir(src, store)
    assert YOLOX in installed and "coco80.names" in installed  # label map from the package
    assert "nanodet_m_416_coco.onnx" in caplog.text
    assert model_path("yolox_nano_416_coco", store).is_file()
    with pytest.raises(ModelNotInstalled, match="wildwatch models import"):
        model_path("nanodet_m_416_coco", store)


def test_import_from_dir_without_models_fails(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NothingToImport):
        import_dir(tmp_path / "empty", tmp_path / "store")


def test_verify_finds_tampered_and_missing_files(tmp_path: Path, shared_dir: Path) -> None:
    store = tmp_path / "store"
    import_dir(shared_dir / "models", store)
    with (store / YOLOX).open("r+b") as fh:
        fh.seek(2000)
        fh.write(b"tampered")
    (store / "inat_bird_labels.txt").unlink()
    status = {r.file: r.status for r in verify(store)}
    assert status[YOLOX] is FileStatus.CORRUPT
    assert status["inat_bird_labels.txt"] is FileStatus.MISSING
    assert status["nanodet_m_416_coco.onnx"] is FileStatus.OK
    with pytest.raises(ModelNotInstalled, match="sha256"):
        model_path("yolox_nano_416_coco", store)


def test_model_path_unknown_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.STORE_ENV, str(tmp_path / "nowhere"))
    assert registry.default_store() == tmp_path / "nowhere"
    with pytest.raises(ModelNotInstalled, match="wildwatch models pull"):
        model_path("yolox_nano_416_coco")


def test_pull_from_real_http_mirror(
    tmp_path: Path, mirror_dir: Path, serve: Callable[[Path], str]
) -> None:
    base = serve(mirror_dir)
    store = tmp_path / "store"
    installed = pull(store, base_url=base + "/", timeout=10)
    assert set(installed) == set(load_manifest().artefacts())
    assert all(r.ok for r in verify(store))
    # A second pull has nothing left to do.
    assert pull(store, base_url=base, timeout=10) == []


def test_pull_wrong_file_fails_checksum(
    tmp_path: Path, mirror_dir: Path, serve: Callable[[Path], str]
) -> None:
    shutil.copy(mirror_dir / "nanodet_m_416_coco.onnx", mirror_dir / YOLOX)
    base = serve(mirror_dir)
    store = tmp_path / "store"
    with pytest.raises(ChecksumError, match=YOLOX):
        pull(store, base_url=base, timeout=10)
    assert not (store / YOLOX).exists()
    assert not [p for p in store.iterdir() if p.suffix == ".part"]


def test_pull_missing_on_server_is_a_download_error(
    tmp_path: Path, mirror_dir: Path, serve: Callable[[Path], str]
) -> None:
    (mirror_dir / "nanodet_m_416_coco.onnx").unlink()
    base = serve(mirror_dir)
    store = tmp_path / "store"
    with pytest.raises(DownloadError, match="HTTP 404"):
        pull(store, base_url=base, timeout=10)
    # Everything else was still installed.
    assert (store / YOLOX).is_file()


def test_pull_unreachable_server_explains_offline(tmp_path: Path) -> None:
    from tests.helpers import free_port

    with pytest.raises(DownloadError, match="models import"):
        pull(tmp_path / "store", base_url=f"http://127.0.0.1:{free_port()}", timeout=2)


def test_cli_import_verify_and_list(tmp_path: Path, shared_dir: Path) -> None:
    runner = CliRunner()
    store = tmp_path / "store"
    result = runner.invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 1
    result = runner.invoke(cli, ["import", str(shared_dir / "models"), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert YOLOX in result.output
    result = runner.invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["list", "--store", str(store)])
    assert result.exit_code == 0
    assert "yolox_nano_416_coco" in result.output and "yes" in result.output
    (store / YOLOX).write_bytes(b"not a model")
    result = runner.invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 1
    assert "corrupt" in result.output


def test_cli_import_corrupt_fails_cleanly(tmp_path: Path, mirror_dir: Path) -> None:
    (mirror_dir / YOLOX).write_bytes(b"garbage")
    result = CliRunner().invoke(cli, ["import", str(mirror_dir), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert "checksum mismatch" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_help_texts() -> None:
    runner = CliRunner()
    for args in ([], ["pull"], ["import"], ["verify"], ["list"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output
