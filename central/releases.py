"""Model releases published by central for the nodes to pull.

Layout under `<data_dir>/releases/`: one folder per version holding the files, `release.json`
and `release.sig`, and `LATEST` naming the version nodes should run. A release is written in a
hidden folder and renamed into place, then `LATEST` is replaced (os.replace): a node asking in
between sees the old release whole or the new one whole.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from broker.payloads import CommandName, CommandPayload, utc_now
from broker.topics import command_topic
from broker.validate import encode
from central.config import CentralConfig
from models.release import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    ReleaseError,
    ReleaseManifest,
    describe_dir,
    load_signing_key,
    manifest_bytes,
    sign,
)

log = logging.getLogger(__name__)

LATEST_NAME = "LATEST"


def releases_dir(config: CentralConfig) -> Path:
    """Where published releases are kept."""
    return config.data_dir / "releases"


def publish(*, root: Path, src: Path, version: str, key_path: Path) -> ReleaseManifest:
    """Copy the files of `src` into a new release `version`, sign it and make it the latest."""
    key = load_signing_key(key_path)
    manifest = describe_dir(src, version=version, public_key=bytes(key.verify_key))
    dest = root / version
    if dest.exists():
        raise ReleaseError(f"版本已存在 / release {version} exists already; publish a new version")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        for entry in manifest.files:
            shutil.copyfile(src / entry.name, staging / entry.name)
        # the copies are what nodes get: they are checked, not the source (which may change)
        check = describe_dir(staging, version=version, public_key=bytes(key.verify_key))
        if [(f.name, f.sha256) for f in check.files] != [
            (f.name, f.sha256) for f in manifest.files
        ]:
            raise ReleaseError(f"复制时文件被改动 / files in {src} changed while publishing")
        data = manifest_bytes(manifest)
        (staging / MANIFEST_NAME).write_bytes(data)
        (staging / SIGNATURE_NAME).write_bytes(sign(data, key))
        staging.chmod(0o755)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write_latest(root, version)
    log.info(
        "release %s published: %d files, %d bytes",
        version,
        len(manifest.files),
        manifest.total_bytes,
    )
    return manifest


def _write_latest(root: Path, version: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".latest.", dir=root)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(version + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the version is no secret
    os.replace(tmp, root / LATEST_NAME)


def latest_version(root: Path) -> str | None:
    """The version nodes should run, or None before anything was published."""
    try:
        version = (root / LATEST_NAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return version or None


def release_file(root: Path, version: str, name: str) -> Path | None:
    """A published file (or the manifest or signature) of `version`, or None.

    `version` and `name` are matched against the folder's own listing, never joined blindly,
    so no request can reach outside the releases folder.
    """
    try:
        versions = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    except FileNotFoundError:
        return None
    if version not in versions:
        return None
    folder = root / version
    if name not in {p.name for p in folder.iterdir() if p.is_file()}:
        return None
    return folder / name


def announce(*, config: CentralConfig, send: Callable[[str, bytes], bool]) -> list[str]:
    """Send `update` to every node allowed to pull (the evidence uploaders, whose token the
    release routes take); returns `site/node` of those the broker accepted it for."""
    told = []
    for uploader in config.evidence.uploaders:
        command = CommandPayload(
            site=uploader.site, node=uploader.node, command=CommandName.UPDATE, sent_at=utc_now()
        )
        if send(command_topic(uploader.site, uploader.node), encode(command)):
            told.append(f"{uploader.site}/{uploader.node}")
        else:
            log.warning(
                "update command to %s/%s not accepted by the broker", uploader.site, uploader.node
            )
    return told
