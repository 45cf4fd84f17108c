"""Signed model releases: the manifest format, ed25519 keys, signing and verification.

A release is a set of files (models, label maps, galleries) named with their sha256 and size in
`release.json`, and an ed25519 signature of exactly those bytes in `release.sig` (detached, so
what is verified is byte for byte what was signed: no re-serialisation on the node). Central
signs when it publishes (`wildwatch central release publish`); a node verifies with the public
key from its configuration before it uses any file. One module for both sides, so the format
cannot drift between the signer and the verifier.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.registry import FileName, ModelId, Sha256, load_manifest, sha256_file

MANIFEST_NAME = "release.json"
SIGNATURE_NAME = "release.sig"
PUBLIC_KEY_SUFFIX = ".pub"
# A release is a handful of models of a few MB; more than this is a broken or hostile manifest.
MAX_FILES = 64
MAX_MANIFEST_BYTES = 64 * 1024
MAX_FILE_BYTES = 512 * 1024 * 1024  # the registry's own bound for one model file
KEY_FILE_MODE = 0o600

ReleaseVersion = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$",
        description="release version, e.g. 2026.12.03-1",
    ),
]


class ReleaseError(Exception):
    """A release that must not be used; the message says why, Chinese first."""


class SignatureError(ReleaseError):
    """The signature does not match the manifest under the configured public key."""


class Role(StrEnum):
    """What a file of a release is."""

    MODEL = "model"
    LABELS = "labels"
    GALLERY = "gallery"  # reference images or embeddings a model compares against


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReleaseFile(_Strict):
    """One file of a release, pinned by sha256 and size."""

    name: FileName
    sha256: Sha256
    size: int = Field(ge=0, le=MAX_FILE_BYTES, description="bytes")
    role: Role
    model_id: ModelId | None = Field(None, description="the model the file belongs to")


class ReleaseManifest(_Strict):
    """What a release holds; `release.json` is this, signed as it is stored."""

    schema_version: Literal[1] = 1
    version: ReleaseVersion
    created_at: AwareDatetime
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="which key signed (see key_id())")
    files: list[ReleaseFile] = Field(min_length=1, max_length=MAX_FILES)

    @model_validator(mode="after")
    def _unique_names(self) -> ReleaseManifest:
        names = [f.name for f in self.files]
        if len(names) != len(set(names)):
            raise ValueError("file names must be unique within a release")
        if {MANIFEST_NAME, SIGNATURE_NAME} & set(names):
            raise ValueError(f"{MANIFEST_NAME} and {SIGNATURE_NAME} cannot be release files")
        return self

    @property
    def total_bytes(self) -> int:
        """Bytes of every file together (what a node needs free before it downloads)."""
        return sum(f.size for f in self.files)


def key_id(public_key: bytes) -> str:
    """A short name of a public key (first 16 hex digits of its sha256), for logs and errors."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def encode_key(raw: bytes) -> str:
    """A key as it is written in files and configs (base64)."""
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """The 32 raw bytes of a base64 ed25519 public key; ReleaseError when it is not one."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReleaseError(f"公钥格式错误 / public key is not base64: {exc}") from exc
    if len(raw) != 32:
        raise ReleaseError(f"公钥长度错误 / an ed25519 public key has 32 bytes, got {len(raw)}")
    return raw


def generate_keys(private_path: Path) -> tuple[Path, str]:
    """Write a new signing key (0600) and its public key beside it (`<name>.pub`).

    Returns the public key file and the public key (base64) to put in the nodes' configs.
    Refuses to overwrite an existing key: a lost key means re-keying every node.
    """
    public_path = private_path.with_name(private_path.name + PUBLIC_KEY_SUFFIX)
    for path in (private_path, public_path):
        if path.exists():
            raise ReleaseError(f"密钥文件已存在 / key file exists, not overwritten: {path}")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    # O_EXCL + mode: the secret never exists on disk with wider permissions, even for a moment.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(encode_key(bytes(key)) + "\n")
    public = encode_key(bytes(key.verify_key))
    public_path.write_text(public + "\n", encoding="ascii")
    return public_path, public


def load_signing_key(path: Path) -> SigningKey:
    """The signing key in `path`; refused when others may read the file."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ReleaseError(
            f"私钥文件权限过宽 / signing key {path} is readable by others (mode {mode:o}): "
            f"chmod 600 {path}"
        )
    try:
        raw = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"私钥格式错误 / {path} is not a signing key: {exc}") from exc
    if len(raw) != 32:
        raise ReleaseError(f"私钥格式错误 / {path} is not an ed25519 signing key")
    return SigningKey(raw)


def role_of(name: str) -> tuple[Role, str | None]:
    """A file's role and model from the packaged manifest: weights are models, a model's extra
    files its labels; anything the manifest does not name is a gallery."""
    for spec in load_manifest().models:
        if name == spec.file:
            return Role.MODEL, spec.id
        if name in {a.file for a in spec.files}:
            return Role.LABELS, spec.id
    return Role.GALLERY, None


def describe_dir(src: Path, *, version: str, public_key: bytes) -> ReleaseManifest:
    """The manifest of every plain file in `src` (sha256 and size measured here)."""
    paths = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise ReleaseError(f"目录为空 / {src} holds no files to release")
    files = []
    for path in paths:
        role, model_id = role_of(path.name)
        files.append(
            ReleaseFile(
                name=path.name,
                sha256=sha256_file(path),
                size=path.stat().st_size,
                role=role,
                model_id=model_id,
            )
        )
    try:
        return ReleaseManifest(
            version=version,
            created_at=datetime.now(UTC),
            key_id=key_id(public_key),
            files=files,
        )
    except ValidationError as exc:
        raise ReleaseError(f"发布清单无效 / invalid release: {exc}") from exc


def manifest_bytes(manifest: ReleaseManifest) -> bytes:
    """Canonical bytes of a manifest: sorted keys, compact, UTF-8 (what is signed and stored)."""
    data = manifest.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(data: bytes, signing_key: SigningKey) -> bytes:
    """The detached ed25519 signature of `data` (base64 text, one line)."""
    return base64.b64encode(signing_key.sign(data).signature) + b"\n"


def verify(data: bytes, signature: bytes, public_key: bytes) -> ReleaseManifest:
    """Check `signature` over exactly `data`, then parse it; SignatureError or ReleaseError."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ReleaseError(
            f"发布清单过大 / release manifest larger than {MAX_MANIFEST_BYTES} bytes"
        )
    try:
        raw_sig = base64.b64decode(signature.strip(), validate=True)
        VerifyKey(public_key).verify(data, raw_sig)
    except (binascii.Error, ValueError, BadSignatureError) as exc:
        raise SignatureError(
            "签名校验失败，发布未被采用 / signature check failed, release not used "
            f"(node key {key_id(public_key)}): {type(exc).__name__}"
        ) from exc
    try:
        return ReleaseManifest.model_validate_json(data)
    except ValidationError as exc:
        raise ReleaseError(f"发布清单无效 / invalid release manifest: {exc}") from exc
