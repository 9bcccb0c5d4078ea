"""A client for a running tingxie server, for scripts and for ``tingxie submit`` / ``tingxie jobs``.

Uploads stream from disk (an hour of video is gigabytes; nothing builds the request body in
memory), live progress comes from the job's events WebSocket, and when that socket is refused or
drops, the job is polled instead. Imports requests and websockets only: no server code.

    with Client("http://127.0.0.1:8000") as client:
        job = client.submit("talk.mp4", language="en", on_upload=lambda sent, total: ...)
        final = client.wait(job["id"], on_update=print)      # JobUpdate(status, stage, progress, ...)
        srt = client.transcript(job["id"], "srt")
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

log = logging.getLogger("tingxie.client")

TERMINAL = frozenset({"done", "failed", "canceled"})
FORMATS = ("json", "txt", "srt", "vtt")


class ClientError(Exception):
    """Base of what the client raises; ``message`` is a sentence for a person."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The server answered and refused the request (4xx): ``code`` is its error code (``bad_media``,
    ``not_found``...), as in the API's ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.status, self.code = status, code
        # A 429's Retry-After: when the request may be sent again.
        self.retry_after_s = retry_after_s


class ServerError(ClientError):
    """The server could not be used: not reachable, a 5xx answer, or not tingxie's API."""


@dataclass(frozen=True)
class JobUpdate:
    """Where a job stands: ``progress`` is 0..1 over the whole job, ``stage`` the pipeline stage
    while it runs (``decode``, ``vad``, ``asr``, ``punc``, ``itn``), ``error`` ``{code, message}``
    once it failed."""

    job_id: str
    status: str
    stage: str | None = None
    progress: float = 0.0
    error: dict | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_job(cls, job: dict) -> "JobUpdate":
        return cls(job["id"], job["status"], job.get("stage"), float(job.get("progress") or 0.0), job.get("error"))


class Client:
    """One server. ``timeout_s`` bounds each wait for the server to answer; ``poll_interval_s`` is how
    often a job is polled when its events socket is not available; a job being followed survives the
    server being unreachable for up to ``retry_s`` (a restart), then :class:`ServerError` is raised."""

    def __init__(self, server_url: str, token: str = "", *, timeout_s: float = 120.0,
                 poll_interval_s: float = 1.0, retry_s: float = 30.0):
        self.server_url = server_url.rstrip("/")
        if not self.server_url.startswith(("http://", "https://")):
            raise ClientError(f"the server URL must start with http:// or https://, not {server_url!r}")
        self.timeout_s, self.poll_interval_s, self.retry_s = timeout_s, poll_interval_s, retry_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = requests.Session()
        self._http.headers.update(self._headers)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- requests -----------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        url = self.server_url + path
        try:
            response = self._http.request(method, url, timeout=(10.0, self.timeout_s), **kwargs)
        except requests.ConnectionError as exc:
            raise ServerError(f"could not reach the tingxie server at {self.server_url} ({_reason(exc)})") from None
        except requests.Timeout:
            raise ServerError(f"the tingxie server at {self.server_url} did not answer within {self.timeout_s:g} s") from None
        if response.status_code >= 500:
            code, message = _error_of(response)
            raise ServerError(f"the server failed on {method} {path}: {message} [{code}] (HTTP {response.status_code})")
        if response.status_code >= 400:
            code, message = _error_of(response)
            retry_after = response.headers.get("Retry-After", "")
            raise ApiError(response.status_code, code, message,
                           float(retry_after) if retry_after.isdigit() else None)
        return response

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"{self.server_url} answered {method} {path} with something that is not JSON: "
                              "is it a tingxie server?") from None

    # --- jobs ---------------------------------------------------------------------------
    def submit(self, path: str | Path, *, on_upload: Callable[[int, int], None] | None = None, **options) -> dict:
        """Upload a media file as a new job: ``{"id", "status", "links"}``. The file is read from disk
        as it is sent; ``on_upload(sent_bytes, total_bytes)`` is called as it goes. ``options``: see
        :meth:`_form`."""
        return self._upload("/api/v1/jobs", Path(path), self._form(**options), on_upload)

    def _upload(self, target: str, path: Path, form: dict, on_upload: Callable[[int, int], None] | None) -> dict:
        fields = {name: value for name, value in form.items() if value is not None}
        with open(path, "rb") as media:
            fields["file"] = (path.name, media, "application/octet-stream")
            encoder = MultipartEncoder(fields=fields)
            monitor = MultipartEncoderMonitor(
                encoder, None if on_upload is None else (lambda m: on_upload(m.bytes_read, m.len))
            )
            return self._json("POST", target, data=monitor, headers={"Content-Type": monitor.content_type})

    # --- batches ------------------------------------------------------------------------
    def create_batch(self, options: dict, *, sources: list[str] | None = None, name: str | None = None) -> dict:
        """A batch with ``options`` (the job options, as JSON: ``language``, ``itn``, ``hotwords``...):
        of ``sources`` (links or bucket keys), or open for :meth:`add_to_batch` when None."""
        body = {**{k: v for k, v in options.items() if v is not None}, **({"name": name} if name else {})}
        if sources:
            body["sources"] = sources
        return self._json("POST", "/api/v1/batches", json=body)

    def add_to_batch(self, batch_id: str, path: str | Path, key: str,
                     on_upload: Callable[[int, int], None] | None = None) -> dict:
        """Upload one file into an open batch under ``key`` (its name in the batch): a key the batch
        already has answers its job, and adds nothing."""
        return self._upload(f"/api/v1/batches/{quote(batch_id, safe='')}/files", Path(path), {"key": key}, on_upload)

    def close_batch(self, batch_id: str) -> dict:
        return self._json("POST", f"/api/v1/batches/{quote(batch_id, safe='')}/close")

    def get_batch(self, batch_id: str) -> dict:
        return self._json("GET", f"/api/v1/batches/{quote(batch_id, safe='')}")

    def batch_jobs(self, batch_id: str) -> Iterator[dict]:
        """Every job of the batch, in the order they were added."""
        page = 1
        while True:
            body = self._json("GET", f"/api/v1/batches/{quote(batch_id, safe='')}/jobs",
                              params={"page": page, "per_page": 1000})
            yield from body["items"]
            if page * body["per_page"] >= body["total"]:
                return
            page += 1

    def batch_zip(self, batch_id: str, formats: list[str], target: Path) -> None:
        """Download the batch's transcripts zip to ``target`` as it streams (never whole in memory)."""
        response = self._request("GET", f"/api/v1/batches/{quote(batch_id, safe='')}/transcripts.zip",
                                 params={"format": ",".join(formats)}, stream=True)
        tmp = target.with_name(f".{target.name}.part")
        with response, open(tmp, "wb") as out:
            for chunk in response.iter_content(256 * 1024):
                out.write(chunk)
        tmp.replace(target)

    def submit_link(self, source_url: str, **options) -> dict:
        """A new job whose media the server's worker fetches from ``source_url`` (http(s) or
        ``s3://bucket/key``): ``{"id", "status", "links"}``. ``options``: see :meth:`_form`."""
        return self._json("POST", "/api/v1/jobs", json={**self._form(**options), "source_url": source_url})

    @staticmethod
    def _form(*, language: str | None = None, hotwords: str | None = None, itn: bool | None = None,
              profile: str | None = None, callback_url: str | None = None, diarize: bool | None = None,
              num_speakers: int | None = None, min_speakers: int | None = None, max_speakers: int | None = None,
              output_url: str | None = None, output_formats: str | None = None, channels: str | None = None,
              channel_names: str | None = None) -> dict:
        """The job's options as form fields. Options left None take the server's defaults;
        ``hotwords`` is sent as given (any shape the API accepts)."""
        form = {"language": language, "hotwords": hotwords, "profile": profile, "callback_url": callback_url,
                "itn": None if itn is None else ("true" if itn else "false"),
                "diarize": None if diarize is None else ("true" if diarize else "false"),
                "num_speakers": num_speakers, "min_speakers": min_speakers, "max_speakers": max_speakers,
                "output_url": output_url, "output_formats": output_formats,
                "channels": channels, "channel_names": channel_names}
        form = {name: str(value) if isinstance(value, int) else value for name, value in form.items()}
        return {name: value for name, value in form.items() if value is not None}

    def get(self, job_id: str) -> dict:
        return self._json("GET", f"/api/v1/jobs/{quote(job_id, safe='')}")

    def list(self, *, status: str | None = None, page: int = 1, per_page: int = 20) -> dict:
        """One page of jobs, newest first: ``{"items", "page", "per_page", "total", "links"}``."""
        params = {"page": page, "per_page": per_page}
        if status:
            params["status"] = status
        return self._json("GET", "/api/v1/jobs", params=params)

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job and return it. A finished job is left alone (ApiError
        ``not_cancelable``)."""
        return self._json("POST", f"/api/v1/jobs/{quote(job_id, safe='')}/cancel")

    def transcript(self, job_id: str, fmt: str = "json") -> str:
        """The finished job's transcript in ``fmt`` (json, txt, srt, vtt), as text."""
        response = self._request("GET", f"/api/v1/jobs/{quote(job_id, safe='')}/transcript", params={"format": fmt})
        response.encoding = "utf-8"
        return response.text

    # --- following a job ----------------------------------------------------------------
    def events(self, job_id: str) -> Iterator[JobUpdate]:
        """The job's state as it changes, ending with its final state (done, failed, canceled).
        Read from the events WebSocket; if that cannot be opened or drops before the end, the job
        is polled every ``poll_interval_s`` instead."""
        last = None
        try:
            for update in self._socket_updates(job_id):
                if update != last:
                    last = update
                    yield update
        except ApiError:
            raise
        except Exception as exc:  # websockets raises several types for a refused or broken socket
            log.debug("the events socket of job %s failed (%s)", job_id, exc)
        if last is not None and last.finished:
            return
        log.debug("the events socket of job %s ended before the job did; polling", job_id)
        yield from self._poll(job_id, last)

    def wait(self, job_id: str, on_update: Callable[[JobUpdate], None] | None = None) -> dict:
        """Follow the job to its end (``on_update`` gets each change) and return the final job
        (the API's JSON, with ``error`` and ``warnings``)."""
        for update in self.events(job_id):
            if on_update is not None:
                on_update(update)
        return self.get(job_id)

    def events_url(self, job_id: str) -> str:
        scheme, rest = self.server_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/v1/jobs/{quote(job_id, safe='')}/events"

    def _socket_updates(self, job_id: str) -> Iterator[JobUpdate]:
        from websockets.sync.client import connect

        # The server closes the socket after the final event: reading on until then lets it end
        # the connection, as RFC 6455 has it; close_timeout bounds one that does not.
        progress = 0.0
        with connect(self.events_url(job_id), additional_headers=self._headers, open_timeout=10,
                     close_timeout=2) as ws:
            for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "snapshot":
                    update = JobUpdate.from_job(message["job"])
                elif kind == "error":
                    error = message.get("error") or {}
                    raise ApiError(404 if error.get("code") == "not_found" else 400,
                                   error.get("code", "error"), error.get("message", "the server refused the socket"))
                elif kind in TERMINAL or kind in ("queued", "running", "progress"):
                    # A failed or canceled job stays where it got to.
                    data = message.get("data") or {}
                    update = JobUpdate(job_id, data.get("status", kind),
                                       None if kind in TERMINAL else data.get("stage"),
                                       float(data.get("progress", progress)), data.get("error"))
                else:
                    continue
                progress = update.progress
                yield update

    def _poll(self, job_id: str, last: JobUpdate | None) -> Iterator[JobUpdate]:
        unreachable_since = None
        while True:
            try:
                update = JobUpdate.from_job(self.get(job_id))
            except ServerError:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.retry_s:
                    raise
                time.sleep(self.poll_interval_s)
                continue
            unreachable_since = None
            if update != last:
                last = update
                yield update
            if update.finished:
                return
            time.sleep(self.poll_interval_s)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """The API's ``{"error": {"code", "message"}}``, or the status and the start of the body when a
    proxy or another server answered."""
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return f"http_{response.status_code}", text or response.reason or "no message"


def _reason(exc: requests.ConnectionError) -> str:
    """The innermost cause, e.g. 'Connection refused', rather than urllib3's nested repr."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    text = getattr(cause, "strerror", None) or str(cause)
    return text.split(": ", 1)[-1] if "Errno" in text else text
