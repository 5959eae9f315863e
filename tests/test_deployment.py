"""The Docker image and compose file: linted, consistent with the server, and the image's command run here."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from tests.helpers import unavailable
from tests.test_cli import fast_env  # noqa: F401  (fixture)
from tests.ui.test_chat_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_the_dockerfile_passes_hadolint():
    linter = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(linter).is_file():
        unavailable("hadolint")
    result = subprocess.run([linter, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_the_server_as_a_non_root_user_with_a_healthcheck():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'CMD ["assistant", "serve"]' in dockerfile and "USER 10001" in dockerfile
    assert "VOLUME /data" in dockerfile and "ASSISTANT_DATA_DIR=/data" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile and "torch==2.13.0" in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    service = compose["services"]["assistant"]
    assert service["volumes"] == ["sa-data:/data"] and service["ports"] == ["7860:7860"]
    environment = service["environment"]
    assert ":?" in environment["ASSISTANT_API_KEYS"] and ":?" in environment["ASSISTANT_AGENT_KEYS"]  # required
    assert environment["ASSISTANT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def run_like_the_image(env: dict[str, str], port: int) -> subprocess.Popen:
    """`assistant serve` with the environment the image sets (public address, data dir, keys as given)."""
    return subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_the_image_command_refuses_a_public_address_without_keys_and_serves_with_them(fast_env, tmp_path):  # noqa: F811
    port = free_port()
    env = {**os.environ, **fast_env, "ASSISTANT_HOST": "0.0.0.0", "ASSISTANT_PORT": str(port),
           "ASSISTANT_DATA_DIR": str(tmp_path / "data")}
    refused = run_like_the_image(env, port)
    output, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2 and "ASSISTANT_API_KEYS" in output and "ASSISTANT_AGENT_KEYS" in output
    keyed = run_like_the_image({**env, "ASSISTANT_API_KEYS": "k1", "ASSISTANT_AGENT_KEYS": "k2"}, port)
    try:
        deadline, ready = time.time() + 120, None
        while time.time() < deadline and keyed.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, keyed.stdout.read() if keyed.poll() else ready
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k1"})
        assert models.status_code == 200
    finally:
        keyed.send_signal(signal.SIGINT)
        keyed.wait(timeout=30)
