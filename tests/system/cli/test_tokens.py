"""``tingxie tokens`` and what ``tingxie up`` says about access, as an operator runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.support.settings import REPO, make_settings
from tests.support.service import settings_env


def tingxie(settings, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**settings_env(settings), **(env or {})})


def test_create_list_revoke(tmp_path):
    settings = make_settings(tmp_path)
    made = tingxie(settings, "tokens", "create", "--tenant", "team-a", "--expires", "30d", "--name", "ci runner")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("tx_") and len(token.splitlines()) == 1  # alone on stdout: TOKEN=$(...)
    token_id = token.split("_")[1]
    # A new data directory is migrated first: the revisions applied are said, Alembic's chatter is not.
    assert "Running upgrade" in made.stderr
    assert "setup plugin" not in made.stderr and "Context impl" not in made.stderr
    assert f"tx_{token_id}_…" in made.stderr and "shown once" in made.stderr and token not in made.stderr
    admin = tingxie(settings, "tokens", "create", "--tenant", "ops", "--admin").stdout.strip()

    listed = tingxie(settings, "tokens", "list")
    assert listed.returncode == 0 and token not in listed.stdout and admin not in listed.stdout
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and "team-a" in lines[1] and "active" in lines[1] and "ci runner" in lines[1]
    assert "ops" in lines[2] and " yes " in lines[2]

    revoked = tingxie(settings, "tokens", "revoke", f"tx_{token_id}_…")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in tingxie(settings, "tokens", "list").stdout.splitlines()[1]
    again = tingxie(settings, "tokens", "revoke", token_id)
    assert again.returncode == 1 and "no active token" in again.stderr


@pytest.mark.parametrize("args,says", [
    (("tokens", "create", "--tenant", "Team A"), "tenant name"),
    (("tokens", "create", "--tenant", "a", "--expires", "yesterday"), "expected never"),
    (("tokens", "create", "--tenant", "a", "--expires", "2001-01-01"), "in the past"),
    (("tokens", "signin", "--tenant", "../x"), "tenant name"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, args, says):
    done = tingxie(make_settings(tmp_path), *args)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr


def test_a_sign_in_link(tmp_path):
    settings = make_settings(tmp_path)
    done = tingxie(settings, "tokens", "signin", "--url", "https://asr.example/")
    assert done.returncode == 0 and done.stdout.startswith("https://asr.example/#signin=txc_")


def test_a_sign_in_link_is_for_its_tenant_only_unless_admin_is_said(tmp_path, speech_path):
    """`tokens signin --tenant team-b` signs the page in as team-b, which sees team-b's jobs and no
    other tenant's; only `--admin` makes an admin session (as `tokens create`)."""
    from core import tokens
    from core.db import session_scope
    from web import create_app

    settings = make_settings(tmp_path, auth="required")
    links = {admin: tingxie(settings, "tokens", "signin", "--tenant", "team-b", *(["--admin"] if admin else []))
             for admin in (False, True)}
    assert all(done.returncode == 0 for done in links.values()), links
    app = create_app(settings, {"TESTING": True})
    try:
        with session_scope(app.extensions["tingxie"].db) as s:
            owners = {tenant: tokens.create(s, tenant=tenant).secret for tenant in ("team-a", "team-b")}
        for tenant, token in owners.items():
            r = app.test_client().post("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"},
                                       data={"file": (speech_path("asr_example.wav").open("rb"), f"{tenant}.wav")})
            assert r.status_code == 202, r.json
        seen = {}
        for admin, done in links.items():
            client = app.test_client()
            signed_in = client.post("/api/v1/session", json={"token": done.stdout.strip().split("#signin=")[1]})
            assert signed_in.status_code == 200 and signed_in.json["tenant"] == "team-b"
            assert signed_in.json["admin"] is admin
            seen[admin] = sorted(job["tenant"] for job in client.get("/api/v1/jobs").json["items"])
        assert seen == {False: ["team-b"], True: ["team-a", "team-b"]}
    finally:
        app.extensions["tingxie"].close()
    help_text = tingxie(settings, "tokens", "signin", "--help").stdout
    assert "--admin" in help_text and "--no-admin" not in help_text and "unless --admin" in " ".join(help_text.split())


def _up(tmp_path, *args: str, env: dict | None = None) -> tuple[list[str], subprocess.Popen]:
    """Start `tingxie up` and read its start-up lines (up to the gateway's line)."""
    settings = make_settings(tmp_path, preload_models=False)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--port", str(settings.port), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**settings_env(settings), **(env or {})}, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("gateway" in line for line in lines):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
    return lines, proc


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()  # reaped: this failure leaks nothing into later tests
        raise AssertionError("tingxie up did not stop within 60 s of Ctrl-C")
    finally:
        proc.stdout.close()


@pytest.mark.slow
def test_up_on_loopback_says_no_token_is_needed_from_this_machine(tmp_path):
    lines, proc = _up(tmp_path, "--host", "127.0.0.1")
    try:
        text = "\n".join(lines)
        assert "no token needed from this machine" in text and "'local' tenant" in text
        assert "#signin=" not in text
        assert "FunASR clients without a token are tenant 'local'" in text
    finally:
        _stop(proc)


@pytest.mark.slow
def test_up_on_another_address_needs_tokens_and_prints_a_sign_in_link(tmp_path):
    lines, proc = _up(tmp_path, "--host", "0.0.0.0")
    try:
        text = "\n".join(lines)
        assert "every request needs a token" in text, text
        link = next(line for line in lines if "#signin=txc_" in line).split()[-1]
        base = link.split("/#", 1)[0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert requests.get(base + "/api/v1/jobs", timeout=5).status_code == 401
        code = link.split("#signin=", 1)[1]
        signed_in = requests.post(base + "/api/v1/session", json={"token": code}, timeout=5)
        assert signed_in.status_code == 200 and signed_in.json()["admin"] is True
    finally:
        _stop(proc)


@pytest.mark.slow
def test_up_without_auth_on_another_address_only_when_told_so(tmp_path):
    lines, proc = _up(tmp_path, "--host", "0.0.0.0", "--insecure-no-auth")
    try:
        text = "\n".join(lines)
        assert "NO AUTHENTICATION" in text and "insecure-no-auth" in text and "#signin=" not in text
    finally:
        _stop(proc)
