"""The release format: keys, detached ed25519 signatures, the manifest's own checks."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from models.cli import cli
from models.release import (
    ReleaseError,
    ReleaseManifest,
    Role,
    SignatureError,
    decode_public_key,
    describe_dir,
    generate_keys,
    key_id,
    load_signing_key,
    manifest_bytes,
    role_of,
    sign,
    verify,
)

SHA = "0" * 64


def _release(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """(manifest bytes, signature, public key) of a small signed release."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "coco80.names").write_text("person\nbicycle\n")
    (src / "egret_gallery.npz").write_bytes(b"\x01\x02\x03")
    key_path = tmp_path / "keys" / "release.key"
    _, public = generate_keys(key_path)
    key = load_signing_key(key_path)
    manifest = describe_dir(src, version="2026.12.03-1", public_key=decode_public_key(public))
    data = manifest_bytes(manifest)
    return data, sign(data, key), decode_public_key(public)


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keygen", str(tmp_path / "k" / "release.key")])
    assert result.exit_code == 0, result.output
    private = tmp_path / "k" / "release.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    public = (tmp_path / "k" / "release.key.pub").read_text().strip()
    assert public in result.output
    assert len(decode_public_key(public)) == 32
    again = CliRunner().invoke(cli, ["keygen", str(private)])  # never overwrites a key
    assert again.exit_code != 0 and "key file exists" in again.output


def test_a_signing_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / "release.key"
    generate_keys(key_path)
    os.chmod(key_path, 0o644)
    with pytest.raises(ReleaseError, match="chmod 600"):
        load_signing_key(key_path)


def test_signed_manifest_verifies_and_names_each_file(tmp_path: Path) -> None:
    data, signature, public = _release(tmp_path)
    manifest = verify(data, signature, public)
    assert manifest.version == "2026.12.03-1"
    assert manifest.key_id == key_id(public)
    by_name = {f.name: f for f in manifest.files}
    assert by_name["coco80.names"].role is Role.LABELS
    assert by_name["coco80.names"].size == len("person\nbicycle\n")
    assert by_name["egret_gallery.npz"].role is Role.GALLERY
    assert by_name["egret_gallery.npz"].model_id is None
    assert manifest.total_bytes == 15 + 3


def test_a_changed_byte_of_the_manifest_fails_the_signature(tmp_path: Path) -> None:
    data, signature, public = _release(tmp_path)
    doc = json.loads(data)
    doc["files"][0]["sha256"] = SHA  # what an attacker would change to slip a file in
    tampered = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(SignatureError, match="signature check failed"):
        verify(tampered, signature, public)


def test_another_key_or_a_garbled_signature_is_refused(tmp_path: Path) -> None:
    data, signature, _ = _release(tmp_path)
    _, other = generate_keys(tmp_path / "other.key")
    with pytest.raises(SignatureError, match=key_id(decode_public_key(other))):
        verify(data, signature, decode_public_key(other))
    with pytest.raises(SignatureError):
        verify(data, b"not base64 at all!", decode_public_key(other))


def test_a_public_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ReleaseError, match="32 bytes"):
        decode_public_key("AAAA")


def test_manifest_refuses_duplicate_names_and_path_like_names() -> None:
    entry = {"name": "a.onnx", "sha256": SHA, "size": 1, "role": "model"}
    base = {"version": "v1", "created_at": datetime.now(UTC), "key_id": "0" * 16}
    with pytest.raises(ValidationError, match="unique"):
        ReleaseManifest.model_validate({**base, "files": [entry, entry]})
    with pytest.raises(ValidationError):
        ReleaseManifest.model_validate({**base, "files": [{**entry, "name": "../etc/passwd"}]})


def test_role_follows_the_packaged_manifest() -> None:
    assert role_of("yolox_nano_416_coco.onnx") == (Role.MODEL, "yolox_nano_416_coco")
    assert role_of("something_else.bin") == (Role.GALLERY, None)
