"""Webhooks: a job's summary POSTed to its ``callback_url`` when it ends, signed, retried, recorded.

Signature: header ``X-Tingxie-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256 over ``b"<t>." + body`` with the deployment's secret (``TINGXIE_WEBHOOK_SECRET``,
else a random one kept in ``<data dir>/webhook-secret``). The timestamp lets a receiver refuse
replays.

Targets: only http(s) URLs whose every address is public, unless the host or address is listed
in ``TINGXIE_WEBHOOK_ALLOW`` (host names, addresses or CIDRs). The connection goes to the address
that was checked (the name is not resolved twice), so DNS cannot swap in an internal address
between the check and the request; redirects are not followed.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.models import Job, Transcript, utcnow
from core.settings import Settings

SIGNATURE_HEADER = "X-Tingxie-Signature"
EVENT_HEADER = "X-Tingxie-Event"
DELIVERY_HEADER = "X-Tingxie-Delivery"
# Seconds to wait before each retry; the first delivery is attempt 1, so at most len + 1 attempts.
BACKOFF_S = (5, 30, 120, 600, 1800)
MAX_ATTEMPTS = len(BACKOFF_S) + 1
TIMEOUT_S = 10.0
TERMINAL = ("done", "failed")


class WebhookTargetError(ValueError):
    """The callback URL may not be called (bad scheme, unresolvable, or an internal address)."""


def secret(settings: Settings) -> bytes:
    """The deployment's signing secret; created once under the data directory when none is set."""
    if settings.webhook_secret:
        return settings.webhook_secret.encode()
    path = Path(settings.data_dir) / "webhook-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    return path.read_text().strip().encode()


def sign(key: bytes, body: bytes, timestamp: int) -> str:
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(key: bytes, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute the HMAC and refuse stale timestamps (replays)."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(key, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _allowed(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, allow) -> bool:
    for entry in allow:
        entry = entry.strip()
        if not entry:
            continue
        if entry.lower() == host.lower():
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue  # a host name entry
    return False


_V6 = ipaddress.ip_network
# IPv6 forms that carry an IPv4 address in their last 32 bits: judged by that address.
_EMBEDDING_V4 = (
    _V6("::ffff:0:0/96"),  # IPv4-mapped
    _V6("::/96"),  # IPv4-compatible (deprecated; ::7f00:1 is 127.0.0.1, ::1 is 0.0.0.1)
    _V6("::ffff:0:0:0/96"),  # SIIT's IPv4-translated
    _V6("64:ff9b::/96"),  # NAT64, well-known prefix
)
# IPv6 ranges that are never a webhook's target, whatever Python's ``is_global`` (which varies by
# version and misses several) says of them.
_NOT_GLOBAL_V6 = (
    _V6("64:ff9b:1::/48"),  # local-use NAT64: a local translator, to any IPv4 address (169.254.169.254...)
    _V6("100::/64"),  # discard
    _V6("2001::/23"),  # IETF special purpose, Teredo (2001::/32) among them
    _V6("2001:db8::/32"), _V6("3fff::/20"),  # documentation
    _V6("5f00::/16"),  # segment routing
    _V6("fc00::/7"),  # unique local
    _V6("fe80::/10"),  # link-local
    _V6("fec0::/10"),  # site-local (deprecated, still routed inside some networks)
    _V6("ff00::/8"),  # multicast
)


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 one stands for (mapped, compatible, SIIT, NAT64, 6to4), else the address."""
    if address.version == 6:
        if any(address in network for network in _EMBEDDING_V4):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour:
            return address.sixtofour
    return address


def _internal(address) -> bool:
    """Whether ``address`` (after :func:`_embedded_ipv4`) is anything but a public unicast address."""
    if address.version == 6 and any(address in network for network in _NOT_GLOBAL_V6):
        return True
    return not address.is_global or address.is_multicast


def check_target(url: str, settings: Settings) -> list[str]:
    """Addresses ``url`` may be delivered to, or WebhookTargetError saying why none.

    Every address the name resolves to must be public (or allowed), so a name with one public
    and one internal address is refused as a whole. IPv6 forms that carry an IPv4 address
    (mapped, compatible, SIIT, NAT64, 6to4) are judged by that address; local-use NAT64, Teredo,
    site-local, unique local, link-local, documentation and multicast ranges are never a target."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookTargetError(f"callback_url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookTargetError("callback_url must be an http:// or https:// URL")
    if not host:
        raise WebhookTargetError("callback_url has no host")
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise WebhookTargetError("callback_url's host name is longer than DNS allows")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookTargetError(f"callback_url host {host[:80]!r} does not resolve: {exc.strerror}") from None
    except UnicodeError:
        raise WebhookTargetError("callback_url's host name is not a valid domain name") from None
    addresses: list[str] = []
    for info in infos:
        raw = info[4][0].split("%", 1)[0]
        effective = _embedded_ipv4(ipaddress.ip_address(raw))
        if _internal(effective) and not _allowed(host, effective, settings.webhook_allow):
            raise WebhookTargetError(
                f"callback_url host {host!r} is an internal address ({effective}); "
                "list it in TINGXIE_WEBHOOK_ALLOW to permit it"
            )
        if str(effective) not in addresses:
            addresses.append(str(effective))
    return addresses


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an already-checked address while sending the URL's own Host header."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, with TLS verified against the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status: str  # "200", "HTTP 500", "error: ...", "refused: ..."
    retry: bool


def post(settings: Settings, url: str, body: bytes, headers: dict[str, str]) -> Delivery:
    """One signed POST to ``url``; never raises for the receiver's failures."""
    try:
        addresses = check_target(url, settings)
    except WebhookTargetError as exc:
        return Delivery(False, f"refused: {exc}"[:64], retry=False)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    key = secret(settings)
    last_error = "error: no address"
    for address in addresses:
        cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        conn = cls(parts.hostname, port, address, TIMEOUT_S)
        try:
            all_headers = {
                "Content-Type": "application/json",
                "User-Agent": "tingxie-webhook/1",
                SIGNATURE_HEADER: sign(key, body, int(time.time())),
                **headers,
            }
            conn.request("POST", path, body=body, headers=all_headers)
            response = conn.getresponse()
            response.read(65536)
            if 200 <= response.status < 300:
                return Delivery(True, str(response.status), retry=False)
            return Delivery(False, f"HTTP {response.status}", retry=True)
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"error: {type(exc).__name__}: {exc}"[:64]
        finally:
            conn.close()
    return Delivery(False, last_error, retry=True)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()


def payload(job: Job, transcript: Transcript | None) -> dict:
    """What the receiver gets: the job's outcome and where to read the rest (paths on the API)."""
    event = f"job.{job.status}"
    body = {
        "event": event,
        "job": {
            "id": job.id,
            "status": job.status,
            "filename": job.filename,
            "profile": job.profile,
            "source": job.source,
            "duration_ms": job.duration_ms,
            "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
            "warnings": job.warnings or [],
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "links": {
                "self": f"/api/v1/jobs/{job.id}",
                "transcript": f"/api/v1/jobs/{job.id}/transcript",
            },
        },
    }
    if transcript is not None:
        body["job"]["language"] = transcript.language
        body["job"]["text"] = transcript.text
    return body


def deliver_for_job(settings: Settings, factory: sessionmaker[Session], job_id: str) -> Delivery | None:
    """One delivery attempt for a finished job, recorded on it. None: nothing to do (no callback,
    not finished, already delivered, out of attempts, or another attempt holds it)."""
    with session_scope(factory) as session:
        job = session.get(Job, job_id)
        if job is None or not job.callback_url or job.status not in TERMINAL:
            return None
        if job.webhook_delivered_at is not None or job.webhook_attempts >= MAX_ATTEMPTS:
            return None
        seen = job.webhook_attempts
        # Claim this attempt: two copies of the task cannot both send the same attempt.
        claimed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.webhook_attempts == seen, Job.webhook_delivered_at.is_(None))
            .values(webhook_attempts=seen + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return None
        transcript = session.get(Transcript, job_id) if job.status == "done" else None
        body = json.dumps(payload(job, transcript), ensure_ascii=False).encode()
        url, event, attempt = job.callback_url, f"job.{job.status}", seen + 1
    result = post(settings, url, body, {EVENT_HEADER: event, DELIVERY_HEADER: f"{job_id}.{attempt}"})
    with session_scope(factory) as session:
        values: dict = {"webhook_last_status": result.status}
        if result.ok:
            values["webhook_delivered_at"] = utcnow()
        session.execute(update(Job).where(Job.id == job_id).values(**values))
    if not result.ok and attempt >= MAX_ATTEMPTS:
        return Delivery(False, result.status, retry=False)
    return result


def backoff_s(retries_done: int) -> int:
    return BACKOFF_S[min(retries_done, len(BACKOFF_S) - 1)]
