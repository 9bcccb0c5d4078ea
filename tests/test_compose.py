"""The compose stacks, as ``docker-compose config`` renders them (Debian's docker-compose package
runs it without a Docker engine; .ci/run installs it). Nothing here starts a container: there is
no Docker engine on these machines (the README says what was and was not run)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.settings import REPO

pytestmark = pytest.mark.subprocess

BASE = ["-f", str(REPO / "docker-compose.yml")]
GPU = [*BASE, "-f", str(REPO / "docker-compose.gpu.yml")]
ONE_SHOT = {"migrate", "minio-init", "models"}


def _compose(files: list[str], env_file: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose; .ci/run does)")
    clean = {"PATH": "/usr/bin:/bin", **env}  # no secret may come from the caller's environment
    return subprocess.run(["docker-compose", "--env-file", str(env_file), *files, "config"], cwd=tmp_path,
                          env=clean, capture_output=True, text=True, timeout=120)


def _render(files: list[str], tmp_path: Path, **env: str) -> dict:
    proc = _compose(files, REPO / ".env.example", tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.mark.parametrize("files", [BASE, GPU], ids=["base", "gpu"])
def test_both_stacks_are_valid_and_every_service_is_checked(files, tmp_path):
    services = _render(files, tmp_path)["services"]
    assert {"redis", "postgres", "minio", "minio-init", "migrate", "web", "gateway", "worker", "flower"} <= set(services)
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            for other in services.values():  # whoever needs a one-shot waits for it to succeed
                if name in other.get("depends_on", {}):
                    assert other["depends_on"][name]["condition"] == "service_completed_successfully"
        else:
            assert service["healthcheck"]["test"], f"{name} has no healthcheck"
    web, gateway = services["web"], services["gateway"]
    assert [p["target"] for p in gateway["ports"]] == [10095] and gateway["command"] == ["gateway"]
    assert [p["target"] for p in web["ports"]] == [8000]
    assert services["flower"]["profiles"] == ["monitoring"]
    for name in ("web", "gateway", "worker"):
        env = services[name]["environment"]
        assert env["TINGXIE_STORAGE_URL"].startswith("s3://") and env["TINGXIE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert "minio-init" in services[name]["depends_on"] and "migrate" in services[name]["depends_on"]
    assert services["worker"]["command"][-2:] == ["--profiles", "offline"]


def test_the_gpu_stack_downloads_with_modelscope_then_starts_gpu_workers_on_the_chosen_device(tmp_path):
    services = _render(GPU, tmp_path, TINGXIE_GPU_DEVICE="3")["services"]
    models, worker = services["models"], services["worker-gpu"]
    # The download runs in the funasr image, which has modelscope (the funasr extra).
    assert models["build"]["args"]["PROFILE"] == "funasr" and models["image"] == worker["image"]
    assert models["command"][:4] == ["models", "download", "--profile", "funasr"]
    assert "modelscope" in (REPO / "pyproject.toml").read_text().split("\nfunasr = [", 1)[1].split("]", 1)[0]
    assert '".[offline,funasr]"' in (REPO / "Dockerfile").read_text()
    assert worker["depends_on"]["models"]["condition"] == "service_completed_successfully"
    assert worker["command"][-2:] == ["--profiles", "funasr"] and worker["environment"]["TINGXIE_DEVICE"] == "cuda"
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] == ["3"]
    # The web tier and the gateway submit to funasr by default in this stack, offline in the base one.
    assert services["web"]["environment"]["TINGXIE_PROFILE"] == "funasr"
    assert services["gateway"]["environment"]["TINGXIE_PROFILE"] == "funasr"
    assert _render(BASE, tmp_path)["services"]["web"]["environment"]["TINGXIE_PROFILE"] == "offline"


def test_no_secret_is_written_in_the_yaml(tmp_path):
    secrets = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if value and not line.startswith("#") and "CHANGE-ME" in value:
            secrets[key] = value
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "MINIO_ROOT_PASSWORD", "TINGXIE_S3_SECRET_ACCESS_KEY",
            "TINGXIE_WEBHOOK_SECRET"} <= set(secrets)
    for path in ("docker-compose.yml", "docker-compose.gpu.yml"):
        text = (REPO / path).read_text()
        assert not [v for v in secrets.values() if v in text]
        assert "POSTGRES_PASSWORD: tingxie" not in text
    # Without them the stack refuses to render, naming what is missing.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = _compose(BASE, empty, tmp_path)
    assert proc.returncode != 0 and "in .env" in proc.stderr
