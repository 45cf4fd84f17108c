"""What each part loads: the walls import-linter checks in CI, seen from a running interpreter.

A node that validates its config must not drag in the server, the server must not load a model
runtime, and code that only handles detections must not load onnxruntime.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("onnxruntime", "cv2", "fastapi", "sqlalchemy", "uvicorn", "openpyxl", "amqtt", "paho")


def _loaded(statement: str) -> set[str]:
    """The heavy packages importing `statement` loads, in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(' '.join(sorted(set(sys.modules))))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    modules = set(out.stdout.split())
    return {name for name in HEAVY if name in modules}


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        # the rules' core and the contract: no runtime, no server, no image library
        ("import surveillance.clusters, surveillance.settings, broker.validate", set()),
        # central's configuration (cluster settings come from surveillance, not edge/rules)
        ("import central.config", set()),
        # a detection and a sighting are plain data: no model runtime, no transport
        ("from edge.detect import Detection; from edge.rules import Sighting", set()),
        # the whole command line answers --help without loading any part
        ("import wildwatch.cli", set()),
    ],
)
def test_imports_load_only_what_they_need(statement: str, allowed: set[str]) -> None:
    assert _loaded(statement) <= allowed


def test_the_server_never_loads_the_node_and_the_node_never_loads_the_server() -> None:
    node = _loaded("import edge.app, edge.cli, edge.scan")
    assert not node & {"fastapi", "sqlalchemy", "uvicorn", "openpyxl", "amqtt"}
    server = _loaded("import central.app, central.commands")
    assert not server & {"onnxruntime", "cv2"}
