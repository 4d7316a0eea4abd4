"""Dockerfile.server: pinned slim base, non-root, no compilers, and its entrypoint serves."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import httpx

from tests.support.dockerfiles import final_stage
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
STAGE = final_stage(ROOT / "Dockerfile.server")


def test_base_image_is_a_pinned_slim_python():
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", STAGE.base), STAGE.base


def test_runs_as_a_numeric_non_root_user():
    assert STAGE.user is not None
    uid = STAGE.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_final_image_installs_no_compiler():
    for line in STAGE.run_lines:
        assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", line), line


def test_entrypoint_serves_a_model_configured_by_environment(start_server, tiny_model):
    assert STAGE.entrypoint[:2] == ["modelrollout", "serve"]
    executable = os.path.join(os.path.dirname(sys.executable), STAGE.entrypoint[0])
    command = [executable, *STAGE.entrypoint[1:], *STAGE.cmd]
    port = free_port()
    # The image's ENV, with the address moved to loopback for the test; the model comes
    # from the environment exactly as the pod template gives it.
    env = {
        **STAGE.env,
        "MODELROLLOUT_HOST": "127.0.0.1",
        "MODELROLLOUT_PORT": str(port),
        "MODELROLLOUT_MODEL_URI": str(tiny_model),
        "MODELROLLOUT_MODEL_NAME": "tiny",
        "MODELROLLOUT_MODEL_VERSION": "7",
    }
    assert STAGE.env["MODELROLLOUT_PORT"] == "8080"
    server = start_server([], env=env, command=command, port=port)
    metadata = httpx.get(f"{server.url}/v2/models/tiny/versions/7").json()
    assert metadata["inputs"][0]["name"] == "input"
    assert server.stop() == 0
