"""OpenAI calls left waiting against a running web tier (tests.service): many at once through the
real SDK, then released by cancelling their jobs through the API."""
from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import requests

from core import tokens
from core.db import make_engine, make_sessionmaker, session_scope


def make_token(settings, tenant: str) -> str:
    """An API token of ``tenant`` (the SDK's api_key), as `tingxie tokens create` makes it."""
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            return tokens.create(session, tenant=tenant).secret
    finally:
        engine.dispose()


class Callers(threading.Thread):
    """``count`` OpenAI calls at once, through the real SDK, each uploading ``path``; ``results``:
    what each call returned or raised."""

    def __init__(self, base_url: str, token: str, path, count: int, model: str = "whisper-1"):
        super().__init__(daemon=True)
        self.base_url, self.token, self.count, self.model = base_url, token, count, model
        self.filename, self.data = path.name, path.read_bytes()
        self.results: list = []

    def run(self) -> None:
        async def main() -> list:
            async with openai.AsyncOpenAI(base_url=self.base_url + "/v1", api_key=self.token, max_retries=0,
                                          timeout=600) as sdk:
                calls = [sdk.audio.transcriptions.create(model=self.model, file=(self.filename, self.data))
                         for _ in range(self.count)]
                return await asyncio.gather(*calls, return_exceptions=True)

        self.results = asyncio.run(main())


def _queued_openai_jobs(service, headers: dict, profile: str | None = None) -> set[str]:
    ids, page = set(), 1
    while True:
        body = requests.get(f"{service.base_url}/api/v1/jobs?per_page=100&page={page}&status=queued",
                            headers=headers, timeout=60).json()
        ids.update(j["id"] for j in body["items"] if j["source"] == "openai" and profile in (None, j["profile"]))
        if page * 100 >= body["total"]:
            return ids
        page += 1


def wait_for_waiting_calls(service, headers: dict, count: int, callers: Callers, profile: str | None = None,
                           deadline_s: float = 180) -> list[str]:
    """The ids of ``count`` queued OpenAI jobs, once they all exist: each call has been taken in and
    is waiting for its job. Fails when they are not all taken in within ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    found: set[str] = set()
    while time.monotonic() < deadline and callers.is_alive():
        found = _queued_openai_jobs(service, headers, profile)
        if len(found) >= count:
            return sorted(found)
        time.sleep(1.0)
    raise AssertionError(f"only {len(found)} of {count} OpenAI calls were taken in and left waiting "
                         f"(results so far: {callers.results[:3]})")


def release(service, headers: dict, job_ids: list[str]) -> None:
    """Cancel the jobs (through the API): their waiting calls are answered."""
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda job_id: requests.post(
            f"{service.base_url}/api/v1/jobs/{job_id}/cancel", headers=headers, timeout=60).status_code, job_ids))
    assert statuses == [200] * len(job_ids), sorted(set(statuses))


def assert_answered_canceled(callers: Callers, job_ids: list[str]) -> None:
    """Every call has been answered: its job was canceled (409, not to be retried), one call a job."""
    callers.join(300)
    assert not callers.is_alive() and len(callers.results) == len(job_ids)
    for result in callers.results:
        assert isinstance(result, openai.APIStatusError), result
        assert result.status_code == 409 and result.body["code"] == "canceled", result.body
        assert result.response.headers["x-should-retry"] == "false"
    assert sorted(r.body["job_id"] for r in callers.results) == sorted(job_ids)
