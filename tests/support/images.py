"""Container images for the deployment tests, built with Debian's podman: the stand-in for the
Dockerfile's `python:3.11-slim` base (Debian's python3.11 on a debootstrap'd bookworm), tingxie's
own image from the project's Dockerfile unchanged, and the test doubles of the third-party servers.

Facts of these machines: Docker Hub cannot be reached, Debian's archive and PyPI can; pip inside a
build needs the machine's CA bundle, which is mounted for the build only (never copied in)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.support.settings import REPO

DOUBLES = REPO / "tests" / "system" / "containers" / "doubles"
BASE = "docker.io/library/python:3.11-slim"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")


class ImageError(RuntimeError):
    pass


def podman(*args: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise ImageError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def ensure_podman() -> None:
    """podman runs containers here once its default ulimits are off (the sandbox refuses raising
    them) and it uses runc (crun refuses this machine's hybrid cgroup layout)."""
    for tool in ("podman", "runc", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed (apt-get install podman runc docker-compose debootstrap)")
    text = CONTAINERS_CONF.read_text() if CONTAINERS_CONF.exists() else ""
    CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
    with CONTAINERS_CONF.open("a") as fh:
        if "default_ulimits" not in text:
            fh.write("\n[containers]\ndefault_ulimits = []\n")
        if "[engine]" not in text:
            fh.write('\n[engine]\nruntime = "runc"\n')


def exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def build_base(work: Path) -> None:
    """The `python:3.11-slim` stand-in: bookworm minbase with Debian's Python 3.11, pip usable for
    the whole system as in the official image (`python`, `pip` on PATH, no PEP 668 marker)."""
    if exists(BASE):
        return
    root = work / "rootfs"
    if not (root / "usr/bin/python3.11").exists():
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3.11,python3-pip,ca-certificates",
                        "bookworm", str(root), "http://deb.debian.org/debian"],
                       check=True, capture_output=True, timeout=1800)
    (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    for name, target in (("python", "python3"), ("pip", "pip3")):
        link = root / "usr/local/bin" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(f"/usr/bin/{target}")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*.deb" if "archives" in cache else "*_*"):
            entry.unlink()
    tarball = work / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(root, arcname=".")
    podman("import", "--change", 'CMD ["python3"]', "--change", "ENV LANG=C.UTF-8", str(tarball), BASE)
    shutil.rmtree(root, ignore_errors=True)
    tarball.unlink()


def build(tag: str, context: Path, containerfile: Path | None = None, **build_args: str) -> None:
    args = ["build", "--pull=never", "-t", tag, "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if containerfile is not None:
        args += ["-f", str(containerfile)]
    podman(*args, str(context))


def size_mib(image: str) -> float:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip()) / 2**20


def build_all(work: Path, *, funasr: bool = False) -> dict[str, float]:
    """Every image the compose test needs (tingxie's, offline profile, and the doubles); with
    ``funasr`` the funasr-profile image too (torch's CPU build from PyPI: the GPU stack's CUDA index
    cannot be reached here). Returns each image's size in MiB."""
    ensure_podman()
    build_base(work)
    images = {"localhost/tingxie:latest": (REPO, None, {})}
    if funasr:
        images["localhost/tingxie-gpu:latest"] = (REPO, None, {"PROFILE": "funasr", "TORCH_SPEC": "torch==2.13.0"})
    for double in ("postgres", "redis", "s3"):
        images[f"localhost/tingxie-double-{double}:latest"] = (DOUBLES, DOUBLES / f"{double}.Containerfile", {})
    for tag, (context, containerfile, build_args) in images.items():
        if os.environ.get("TINGXIE_REBUILD_IMAGES") or not exists(tag) or tag.startswith("localhost/tingxie:"):
            build(tag, context, containerfile, **build_args)
    return {tag: size_mib(tag) for tag in images}
