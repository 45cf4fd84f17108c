"""Helpers of the model-release tests: a real central (uvicorn on a free port) serving releases,
a signing key, and release folders made from the shared models."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from central.app import create_app
from central.config import CentralConfig
from central.db.session import make_engine, make_session_factory
from central.releases import publish, releases_dir
from models.release import ReleaseManifest, generate_keys
from tests.helpers import free_port, wait_for

NODE = ("changxing", "cx-01")
NODE_TOKEN = "release-token-of-cx-01-0123456789"
TOKEN_ENV = "WW_TEST_RELEASE_TOKEN"
# What the default detector (the ensemble of YOLOX-Nano and NanoDet) needs from a store.
DETECTOR_FILES = ("yolox_nano_416_coco.onnx", "nanodet_m_416_coco.onnx", "coco80.names")


class CentralServer:
    """Central's API served by uvicorn on a free loopback port; publishes releases."""

    def __init__(self, data_dir: Path, key: Path) -> None:
        self.key = key
        self.config = CentralConfig.model_validate(
            {
                "data_dir": str(data_dir),
                "evidence": {
                    "uploaders": [{"site": NODE[0], "node": NODE[1], "token_env": TOKEN_ENV}]
                },
                "alerts": {"duty_phones": ["13900000000"]},
            }
        )
        # the release routes use no database; an empty in-memory one satisfies the factory
        self.engine = make_engine("sqlite://")
        app = create_app(config=self.config, session_factory=make_session_factory(self.engine))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def releases(self) -> Path:
        """Central's releases folder."""
        return releases_dir(self.config)

    def publish(self, src: Path, version: str) -> ReleaseManifest:
        """Sign and publish `src` as `version` (what `wildwatch central release publish` does)."""
        return publish(root=self.releases, src=src, version=version, key_path=self.key)


@contextmanager
def running_central(data_dir: Path, key: Path) -> Iterator[CentralServer]:
    """A central serving releases until the block ends (the token env var must be set)."""
    central = CentralServer(data_dir, key)
    central.thread.start()
    assert wait_for(lambda: central.server.started, 10), "central did not start"
    try:
        yield central
    finally:
        central.server.should_exit = True
        central.thread.join(10)
        central.engine.dispose()


def signing_key(folder: Path, name: str = "release.key") -> tuple[Path, str]:
    """A new signing key in `folder` and its public key (base64)."""
    key = folder / name
    _, public = generate_keys(key)
    return key, public


def release_source(
    shared_models: Path, dest: Path, files: tuple[str, ...] = DETECTOR_FILES
) -> Path:
    """A folder holding copies of the shared model files a release is made of."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(shared_models / name, dest / name)
    return dest
