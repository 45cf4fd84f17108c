"""Model registry: the packaged manifest; installing, verifying and finding models in a store."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

logger = logging.getLogger(__name__)

MANIFEST_RESOURCE = "manifest.yaml"
LABELS_RESOURCE_DIR = "labels"
STORE_ENV = "WILDWATCH_MODELS_DIR"
MIRROR_ENV = "WILDWATCH_MODELS_MIRROR"
DEFAULT_STORE = Path("~/.local/share/wildwatch/models")
# Generous for a 4 MB model on a slow rural uplink; a stalled connection still fails in time.
DOWNLOAD_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20
# Refuse anything larger than any model we ship; protects the disk from a broken mirror.
MAX_FILE_BYTES = 512 * 1024 * 1024
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "file"})
USER_AGENT = "wildwatch-models/1"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="lower-case hex sha256")]
FileName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128, description="plain file name"),
]
ModelId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="model id")]
DecoderKey = Literal["yolox", "nanodet", "yolo", "mdlite", "inat_classifier"]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class RegistryError(Exception):
    """Base class of every model-registry error."""


class ChecksumError(RegistryError):
    """A file's sha256 does not match the manifest; nothing was installed."""

    def __init__(self, file: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {file}: expected sha256 {expected}, got {actual}")
        self.file = file
        self.expected = expected
        self.actual = actual


class ModelNotInstalled(RegistryError):
    """A model (or one of its files) is missing from the store or fails verification."""


class UnknownModel(RegistryError):
    """The model id is not in the manifest."""


class NothingToImport(RegistryError):
    """The source directory holds none of the manifest's files."""


class DownloadError(RegistryError):
    """A file could not be downloaded (offline, HTTP error, no download URL)."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtefactSpec(_Spec):
    """An extra file that belongs to a model (label map, ...), pinned by sha256."""

    file: FileName
    sha256: Sha256
    url: str | None = Field(default=None, description="direct download URL of exactly this file")
    bundled: bool = Field(default=False, description="shipped in the package under models/labels/")


class InputSpec(_Spec):
    """What the model expects as input, for humans and for the decoders' sanity checks."""

    name: str = Field(min_length=1, description="input tensor name")
    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=8)
    dtype: Literal["float32", "uint8"]
    layout: Literal["NCHW", "NHWC"]
    colour: Literal["BGR", "RGB"]
    normalisation: str = Field(min_length=1, max_length=200)
    resize: str = Field(min_length=1, max_length=200)


class ModelSpec(_Spec):
    """One model: its weights file, origin, licence, input format, label map and decoder."""

    id: ModelId
    file: FileName
    sha256: Sha256
    url: str | None = Field(description="direct download URL of exactly this file, or null")
    source: str = Field(min_length=1, max_length=500, description="upstream origin")
    conversion: str | None = Field(default=None, description="how the file was derived upstream")
    licence: str = Field(min_length=1, max_length=64)
    task: Literal["detection", "classification"]
    card: FileName = Field(description="model card under models/cards/")
    input: InputSpec
    labels: FileName = Field(description="label map file, one of `files`")
    decoder: DecoderKey
    files: list[ArtefactSpec] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _labels_listed(self) -> ModelSpec:
        if self.labels not in {a.file for a in self.files}:
            raise ValueError(f"model {self.id}: label map {self.labels} is not listed in files")
        return self

    def artefacts(self) -> list[ArtefactSpec]:
        """The weights file followed by every extra file, all installed together."""
        main = ArtefactSpec(file=self.file, sha256=self.sha256, url=self.url)
        return [main, *self.files]


class Manifest(_Spec):
    """The whole manifest: every model the system may load."""

    schema_version: Literal[1]
    models: list[ModelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        ids = [m.id for m in self.models]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate model ids in manifest")
        hashes: dict[str, str] = {}
        for artefact in (a for m in self.models for a in m.artefacts()):
            if hashes.setdefault(artefact.file, artefact.sha256) != artefact.sha256:
                raise ValueError(f"file {artefact.file} listed with two different sha256 values")
        return self

    def get(self, model_id: str) -> ModelSpec:
        """The model with this id, or UnknownModel."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        known = ", ".join(m.id for m in self.models)
        raise UnknownModel(f"unknown model {model_id!r}; known models: {known}")

    def artefacts(self) -> dict[str, ArtefactSpec]:
        """Every distinct file of every model, by file name (shared label maps appear once)."""
        out: dict[str, ArtefactSpec] = {}
        for spec in self.models:
            for artefact in spec.artefacts():
                out.setdefault(artefact.file, artefact)
        return out

    def owners(self, file: str) -> tuple[str, ...]:
        """Ids of the models that use this file."""
        return tuple(m.id for m in self.models if file in {a.file for a in m.artefacts()})


class FileStatus(StrEnum):
    """Verification outcome of one file in the store."""

    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class VerifyResult:
    """Verification of one manifest file in a store."""

    file: str
    models: tuple[str, ...]
    status: FileStatus
    expected: str
    actual: str | None

    @property
    def ok(self) -> bool:
        """True when the file is present and its sha256 matches."""
        return self.status is FileStatus.OK


@functools.cache
def load_manifest() -> Manifest:
    """The manifest shipped in the package (parsed and validated once)."""
    text = resources.files(__package__ or "models").joinpath(MANIFEST_RESOURCE).read_text("utf-8")
    try:
        return Manifest.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise RegistryError(f"packaged {MANIFEST_RESOURCE} is invalid: {exc}") from exc


def default_store() -> Path:
    """The model store: $WILDWATCH_MODELS_DIR, else ~/.local/share/wildwatch/models."""
    env = os.environ.get(STORE_ENV)
    return Path(env).expanduser() if env else DEFAULT_STORE.expanduser()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# (path, size, mtime_ns) -> sha256, so repeated model_path() calls do not re-hash the weights.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def _install_stream(reader: _Readable, dest: Path, artefact: ArtefactSpec) -> Path:
    """Copy `reader` into dest/<file> through a temp file, check sha256, then rename atomically."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / artefact.file
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{artefact.file}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := reader.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise RegistryError(f"{artefact.file} is larger than {MAX_FILE_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != artefact.sha256:
            raise ChecksumError(artefact.file, artefact.sha256, actual)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("installed %s (%d bytes, sha256 ok)", target, size)
    return target


def _install_bundled(dest: Path, artefact: ArtefactSpec) -> Path:
    """Install a small file shipped in the package (label maps)."""
    res = resources.files(__package__ or "models").joinpath(LABELS_RESOURCE_DIR, artefact.file)
    with res.open("rb") as reader:
        return _install_stream(reader, dest, artefact)


def _is_valid(path: Path, sha256: str) -> bool:
    return path.is_file() and _cached_sha256(path) == sha256


def import_dir(src: Path, dest: Path) -> list[str]:
    """Copy every manifest file found in `src` into the store `dest`, verifying each sha256.

    Files absent from `src` are logged; bundled label maps absent from `src` are installed
    from the package. Returns the names installed. Raises NothingToImport when `src` holds
    none of the manifest's files and ChecksumError (leaving nothing behind) on a mismatch.
    """
    if not src.is_dir():
        raise NothingToImport(f"{src} is not a directory")
    artefacts = load_manifest().artefacts()
    found = [a for a in artefacts.values() if (src / a.file).is_file()]
    if not found:
        raise NothingToImport(
            f"{src} holds none of the manifest's files ({', '.join(sorted(artefacts))})"
        )
    installed: list[str] = []
    for artefact in artefacts.values():
        path = src / artefact.file
        if path.is_file():
            with path.open("rb") as reader:
                _install_stream(reader, dest, artefact)
        elif artefact.bundled:
            _install_bundled(dest, artefact)
        else:
            logger.warning("%s not found in %s; not imported", artefact.file, src)
            continue
        installed.append(artefact.file)
    return installed


def verify(dest: Path) -> list[VerifyResult]:
    """Check every manifest file in the store: ok, missing or corrupt (sha256 mismatch)."""
    manifest = load_manifest()
    results: list[VerifyResult] = []
    for name, artefact in manifest.artefacts().items():
        path = dest / name
        owners = manifest.owners(name)
        if not path.is_file():
            results.append(VerifyResult(name, owners, FileStatus.MISSING, artefact.sha256, None))
            continue
        actual = sha256_file(path)
        status = FileStatus.OK if actual == artefact.sha256 else FileStatus.CORRUPT
        results.append(VerifyResult(name, owners, status, artefact.sha256, actual))
    return results


def _download_url(artefact: ArtefactSpec, base_url: str | None) -> str | None:
    if base_url:
        return f"{base_url.rstrip('/')}/{urllib.parse.quote(artefact.file)}"
    return artefact.url


def _download(url: str, dest: Path, artefact: ArtefactSpec, timeout: float) -> Path:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ALLOWED_URL_SCHEMES:
        raise DownloadError(f"refusing URL {url!r}: scheme must be one of {ALLOWED_URL_SCHEMES}")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _install_stream(response, dest, artefact)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download {artefact.file} from {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot download {artefact.file} from {url}: {reason}. If this machine is offline, "
            "copy the model files here and run `wildwatch models import DIR`, or point "
            f"--mirror / {MIRROR_ENV} at a reachable copy."
        ) from exc


def pull(dest: Path, base_url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> list[str]:
    """Download every missing or corrupt manifest file into the store, verifying sha256.

    Without `base_url` each file comes from its upstream URL; with a mirror, from
    `base_url + '/' + file`. Bundled label maps are installed from the package.
    Returns the names installed; raises ChecksumError at once on a mismatch and
    DownloadError after trying everything else when some files could not be fetched.
    """
    failures: list[str] = []
    installed: list[str] = []
    for artefact in load_manifest().artefacts().values():
        if _is_valid(dest / artefact.file, artefact.sha256):
            logger.debug("%s already installed and verified", artefact.file)
            continue
        if artefact.bundled:
            _install_bundled(dest, artefact)
            installed.append(artefact.file)
            continue
        url = _download_url(artefact, base_url)
        if url is None:
            failures.append(
                f"{artefact.file} has no direct download URL (converted locally upstream): "
                f"import it with `wildwatch models import DIR` or use a mirror ({MIRROR_ENV})"
            )
            continue
        logger.info("downloading %s from %s", artefact.file, url)
        try:
            _download(url, dest, artefact, timeout)
        except DownloadError as exc:
            failures.append(str(exc))
            continue
        installed.append(artefact.file)
    if failures:
        raise DownloadError("; ".join(failures))
    return installed


def _require(store: Path, model_id: str, files: Iterable[ArtefactSpec]) -> None:
    for artefact in files:
        path = store / artefact.file
        if not path.is_file():
            problem = "is not installed"
        elif _cached_sha256(path) != artefact.sha256:
            problem = "fails its sha256 check (corrupt or tampered)"
        else:
            continue
        raise ModelNotInstalled(
            f"model {model_id}: {artefact.file} {problem} in {store}. Run "
            "`wildwatch models import DIR` (offline) or `wildwatch models pull` to install it."
        )


def model_path(model_id: str, store: Path | None = None) -> Path:
    """Path of the installed, verified weights of `model_id` (with its label map present)."""
    spec = load_manifest().get(model_id)
    root = store if store is not None else default_store()
    _require(root, model_id, spec.artefacts())
    return root / spec.file


def labels_path(model_id: str, store: Path | None = None) -> Path:
    """Path of the installed, verified label map of `model_id`."""
    spec = load_manifest().get(model_id)
    root = store if store is not None else default_store()
    _require(root, model_id, [a for a in spec.files if a.file == spec.labels])
    return root / spec.labels


def load_labels(model_id: str, store: Path | None = None) -> list[str]:
    """The label map of `model_id` as a list indexed by class id."""
    text = labels_path(model_id, store).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]
