"""How long a node takes to take up a signed model release: download + verify, and self-test.

Real central (uvicorn on loopback), the shared models as the release (the default detector's
YOLOX-Nano, NanoDet-m and label map, 7.5 MB), the node's own updater and self-test. Prints the
median and worst of N rounds (each a new version, so each is downloaded and switched).

    python -m benchmarks.releases [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from edge.config import parse_config
from edge.updater import ReleaseFolder, Updater, load_and_test
from tests.conftest import SHARED
from tests.releases import (
    NODE,
    NODE_TOKEN,
    TOKEN_ENV,
    release_source,
    running_central,
    signing_key,
)


def main() -> None:
    """Publish and pull `--rounds` releases; print the timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ[TOKEN_ENV] = NODE_TOKEN
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        key, public = signing_key(tmp / "keys")
        src = release_source(SHARED / "models", tmp / "src")
        size = sum(p.stat().st_size for p in src.iterdir()) / 1e6
        with running_central(tmp / "central", key) as central:
            config = parse_config(
                {
                    "site": NODE[0],
                    "node": NODE[1],
                    "data_dir": str(tmp / "edge"),
                    "cameras": [{"id": "cam1"}],
                    "classifier": {"enabled": False},
                    "updates": {
                        "central_url": central.url,
                        "public_key": public,
                        "token_env": TOKEN_ENV,
                    },
                }
            )
            assert config.updates is not None
            folder = ReleaseFolder(config.releases_dir)
            folder.root.mkdir(parents=True)
            updater = Updater(
                config.updates,
                NODE_TOKEN,
                folder,
                load=partial(load_and_test, config),
                activate=lambda _models, _version: None,
            )
            verify_s, test_s, total_s = [], [], []
            for n in range(args.rounds):
                central.publish(src, f"bench-{n}")
                started = time.perf_counter()
                outcome = updater.check()
                total_s.append(time.perf_counter() - started)
                assert outcome.switched, outcome.detail
                verify_s.append(outcome.verify_s)
                test_s.append(outcome.self_test_s)
            updater.stop()
    print(f"release of {size:.1f} MB, {args.rounds} rounds (median / worst):")
    for name, values in (
        ("download + size/sha256 + signature", verify_s),
        ("self-test (load detector, run on frame)", test_s),
        ("whole round incl. switch", total_s),
    ):
        print(f"  {name:40} {statistics.median(values):6.2f} s / {max(values):6.2f} s")


if __name__ == "__main__":
    main()
