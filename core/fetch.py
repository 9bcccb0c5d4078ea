"""A job's media fetched from its link (``source_url``) by its worker, streamed to a local file
with the upload's caps checked as bytes arrive; the caller probes the whole file and puts it in the
media store.

The size cap (``TINGXIE_MAX_UPLOAD_MB``) holds on the declared length and on every chunk. The
duration cap (``TINGXIE_MAX_DURATION_S``) holds on the part that has arrived: once
:data:`FIRST_PROBE_BYTES` are there, and again each time that part has grown :data:`PROBE_GROWTH`-fold
(at most 7 probes under the default 4 GiB size cap; never one a chunk), the media probe looks at the
local partial file (:func:`media.probe_prefix`: the one sandboxed probe, ``file`` protocol and
demuxer allowlist; ffmpeg never sees the URL). A container that declares more than the cap (MP3
Xing/Info, FLAC STREAMINFO, an MP4 index at the front, Matroska; a WAV header, where the length the
source declared holds its data), or a part that already holds more, stops the download:
``too_long``, an over-long upload's code and message. A file that declares nothing and is not over
the cap yet (an MP4 whose index comes last) is judged by the caller's probe of the whole file.

http(s): urllib3, one hop at a time (redirects are followed here, at most :data:`MAX_REDIRECTS`,
each new URL checked as the first). Every address a host name resolves to must be one a webhook
may reach (core.webhooks: public unicast; loopback, private, link-local, metadata, NAT64/6to4 forms
of them refused) unless ``TINGXIE_FETCH_ALLOW`` lists the host or a range holding the address.
The connection goes to an address that was checked, never to a name resolved again (DNS cannot
swap in an internal address between the check and the connection), and the connected socket's
peer is checked once more before a byte is sent. A source that sends nothing for
``TINGXIE_FETCH_TIMEOUT_S`` fails. ffmpeg never sees the URL: it opens the local copy.

s3://bucket/key: read with the deployment's S3 credentials (core.s3), within the tenant's
``TINGXIE_TENANT_SOURCES`` (core.sources, checked by the caller).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin, urlsplit

from core import sources
from core.errors import TingxieError
from core.s3 import S3Store
from core.settings import Settings
from core.webhooks import _allowed, _embedded_ipv4, _internal
from media import MediaError, MediaTooLongError, probe_prefix

log = logging.getLogger("tingxie.fetch")

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK_BYTES = 256 * 1024
USER_AGENT = "tingxie-fetch/1"
# The duration cap's probes of the part that has arrived: the first at 1 MiB (a header, an index at
# the front, and enough audio to estimate a bit rate), then at 4, 16, 64 MiB...
FIRST_PROBE_BYTES = 1 << 20
PROBE_GROWTH = 4

# Called with the bytes received so far and the total when the source said it (else None); it
# may raise to stop the fetch (a canceled job).
Progress = Callable[[int, "int | None"], None]


class FetchRefusedError(TingxieError):
    """The link leads somewhere a worker may not connect to; the message says where and why."""

    code = "fetch_refused"


class FetchFailedError(TingxieError):
    """The source answered with an error, could not be reached, or stalled."""

    code = "fetch_failed"


def short_url(url: str) -> str:
    """A URL for messages and logs: scheme, host and path, without the query (it may hold a signature)."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return text if len(text) <= 200 else text[:197] + "..."


def _describe(*addresses) -> str:
    """What kind of internal address it is, judged by the address itself first (``::1`` is IPv6's
    loopback before it is the IPv4-compatible form of 0.0.0.1), then by the IPv4 address it carries."""
    for address in addresses:
        for what, test in (("unspecified", "is_unspecified"), ("loopback", "is_loopback"),
                           ("link-local", "is_link_local"), ("multicast", "is_multicast"), ("private", "is_private"),
                           ("reserved", "is_reserved")):
            if getattr(address, test, False):
                return what
    return "non-public"


def vet_address(host: str, raw: str, allow: tuple[str, ...]) -> str:
    """``raw`` (an address ``host`` resolved to, or a socket's peer) if a worker may connect to it,
    else :class:`FetchRefusedError` naming it and why."""
    address = ipaddress.ip_address(raw.split("%", 1)[0])
    effective = _embedded_ipv4(address)
    if _internal(effective) and not _allowed(host, effective, allow):
        shown = f"{address} (that is {effective})" if effective != address else str(address)
        where = shown if host.strip("[]") == str(address) else f"{host[:80]} is {shown},"
        raise FetchRefusedError(f"{where} a {_describe(address, effective)} address; a link may lead only to "
                                "public addresses (TINGXIE_FETCH_ALLOW lists exceptions)")
    return str(address)


def resolve(host: str, port: int, allow: tuple[str, ...]) -> list[str]:
    """Every address ``host`` resolves to, each vetted: one internal address refuses the name."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchFailedError(f"the host {host[:80]!r} does not resolve: {exc.strerror}") from None
    except UnicodeError:
        raise FetchFailedError(f"{host[:80]!r} is not a valid host name") from None
    addresses: list[str] = []
    for info in infos:
        address = vet_address(host, info[4][0], allow)
        if address not in addresses:
            addresses.append(address)
    return addresses


def check_peer(sock: socket.socket, host: str, vetted: list[str], allow: tuple[str, ...]) -> None:
    """The connected socket's far end is an address that was vetted for ``host`` and passes the
    rules itself; anything else (a rebinding, a proxy in the way) closes it, refused."""
    peer = sock.getpeername()[0].split("%", 1)[0]
    canonical = str(ipaddress.ip_address(peer))
    if canonical not in {str(ipaddress.ip_address(v)) for v in vetted}:
        raise FetchRefusedError(f"{host[:80]}: the connection reached {canonical}, not an address that was checked "
                                f"({', '.join(vetted)})")
    vet_address(host, canonical, allow)


def _connection_classes():
    """urllib3 connections that connect only to vetted addresses and check the peer (urllib3 is
    imported here: the web tier never fetches)."""
    # urllib3 only in a process that fetches links (the web tier never fetches)
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class Vetted:
        allow: tuple[str, ...] = ()

        def _new_conn(self) -> socket.socket:
            vetted = resolve(self.host, self.port, self.allow)
            last: OSError | None = None
            for address in vetted:
                try:
                    sock = socket.create_connection((address, self.port), self.timeout)
                except OSError as exc:
                    last = exc
                    continue
                try:
                    check_peer(sock, self.host, [address], self.allow)
                except BaseException:
                    sock.close()
                    raise
                return sock
            raise FetchFailedError(f"could not connect to {self.host[:80]} ({', '.join(vetted)}): {last}")

    class VettedHTTP(Vetted, HTTPConnection):
        pass

    class VettedHTTPS(Vetted, HTTPSConnection):
        pass

    return VettedHTTP, VettedHTTPS


def fetch_http(settings: Settings, url: str, target: Path, on_progress: Progress | None = None) -> Path:
    """``url`` into ``target`` (created), following redirects hop by hop, each one vetted."""
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            following = _hop(settings, current, target, on_progress)
        except FetchRefusedError as exc:
            if hop == 0:
                raise
            raise FetchRefusedError(f"{short_url(url)} redirected to {short_url(current)}: {exc.message}") from None
        if following is None:
            return target
        log.info("fetch: %s redirects to %s", short_url(current), short_url(following))
        current = following
    raise FetchFailedError(f"{short_url(url)} redirects more than {MAX_REDIRECTS} times")


def _hop(settings: Settings, url: str, target: Path, on_progress: Progress | None) -> str | None:
    """One request: the bytes into ``target`` (None), or the URL a redirect leads to."""
    # urllib3 only in a process that fetches links (the web tier never fetches)
    import urllib3
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, ReadTimeoutError

    sources.check_http(url)
    parts = urlsplit(url)
    https = parts.scheme == "https"
    http_cls, https_cls = _connection_classes()
    pool_cls = urllib3.HTTPSConnectionPool if https else urllib3.HTTPConnectionPool
    timeout = urllib3.Timeout(connect=settings.fetch_timeout_s, read=settings.fetch_timeout_s)
    pool = pool_cls(parts.hostname, parts.port or (443 if https else 80), timeout=timeout, retries=False, maxsize=1)
    pool.ConnectionCls = type("FetchConnection", (https_cls if https else http_cls,), {"allow": settings.fetch_allow})
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        try:
            response = pool.urlopen("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                                    redirect=False, retries=False, preload_content=False, decode_content=False)
        except (ConnectTimeoutError, ReadTimeoutError):
            raise FetchFailedError(f"{short_url(url)} did not answer within {settings.fetch_timeout_s:g} s "
                                   "(TINGXIE_FETCH_TIMEOUT_S)") from None
        except HTTPError as exc:
            raise FetchFailedError(f"could not fetch {short_url(url)}: {exc}") from None
        try:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise FetchFailedError(f"{short_url(url)} answered HTTP {response.status} without a Location")
                following = urljoin(url, location)
                if urlsplit(following).scheme not in sources.HTTP_SCHEMES:
                    raise FetchRefusedError(f"{short_url(url)} redirects to {short_url(following)}: a link may lead "
                                            "only to http:// or https://")
                return following
            if not 200 <= response.status < 300:
                reason = f" {response.reason}" if response.reason else ""
                raise FetchFailedError(f"{short_url(url)} answered HTTP {response.status}{reason}")
            try:
                _stream(settings, response, url, target, on_progress)
            except BaseException:
                # The body is left unread (a cap, a cancel): hang up now. A response without a
                # length owns its socket, which closing the pool would leave open until collected.
                response.close()
                raise
            return None
        finally:
            response.release_conn()
    finally:
        pool.close()


def _stream(settings: Settings, response, url: str, target: Path, on_progress: Progress | None) -> Path:
    # urllib3 only in a process that fetches links (the web tier never fetches)
    from urllib3.exceptions import HTTPError, ReadTimeoutError

    limit = settings.max_upload_bytes
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if total is not None and total > limit:
        raise _too_large(url, total, limit)
    received = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    duration = DurationCheck(settings, url, target, total)
    try:
        with open(target, "wb") as fh:
            # read1: what has arrived, up to a chunk (a stalled source's bytes so far are counted).
            while chunk := response.read1(CHUNK_BYTES, decode_content=False):
                received += len(chunk)
                if received > limit:
                    raise _too_large(url, received, limit)
                fh.write(chunk)
                duration.arrived(fh, received)
                if on_progress is not None:
                    on_progress(received, total)
    except ReadTimeoutError:
        target.unlink(missing_ok=True)
        raise FetchFailedError(f"{short_url(url)} sent nothing for {settings.fetch_timeout_s:g} s after "
                               f"{received} bytes (TINGXIE_FETCH_TIMEOUT_S)") from None
    except HTTPError as exc:
        target.unlink(missing_ok=True)
        raise FetchFailedError(f"{short_url(url)} broke off after {received} bytes: {type(exc).__name__}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if total is not None and received < total:
        target.unlink(missing_ok=True)
        raise FetchFailedError(f"{short_url(url)} ended after {received} of {total} bytes")
    return target


def _too_large(url: str, size: int, limit: int) -> TingxieError:
    return TingxieError(f"{short_url(url)} is over {size / 2**20:.0f} MiB; the limit is {limit / 2**20:.0f} MiB "
                        "(TINGXIE_MAX_UPLOAD_MB)", code="too_large")


class DurationCheck:
    """The duration cap on the part of ``target`` that has arrived (see the module's docstring)."""

    def __init__(self, settings: Settings, url: str, target: Path, total: int | None):
        self.url, self.target, self.total = url, target, total
        self.max_duration_ms = int(settings.max_duration_s * 1000)
        self.next_bytes: int | None = FIRST_PROBE_BYTES

    def arrived(self, fh, received: int) -> None:
        """Probe what is in ``fh`` when ``received`` has reached the next mark; ``too_long`` when it
        is over the cap. Not once the whole file is there (the caller probes that)."""
        if self.next_bytes is None or received < self.next_bytes or received == self.total:
            return
        self.next_bytes = received * PROBE_GROWTH
        fh.flush()
        try:
            probe_prefix(self.target, max_duration_ms=self.max_duration_ms, whole_bytes=self.total or None)
        except MediaTooLongError as exc:
            log.info("fetch: %s stopped after %d bytes: over the duration cap", short_url(self.url), received)
            raise TingxieError(f"{short_url(self.url)}: {exc.message} (TINGXIE_MAX_DURATION_S)",
                               code="too_long") from None
        except MediaError as exc:
            # The cut may be what the probe trips on (an MP4's index comes last): the whole file's
            # probe decides. A part that ran the probe out of time is not probed again.
            log.debug("fetch: %s: the first %d bytes do not probe yet: %s", short_url(self.url), received, exc.code)
            if exc.code in ("media_timeout", "ffmpeg_missing"):
                self.next_bytes = None


def fetch_s3(settings: Settings, url: str, target: Path, on_progress: Progress | None = None) -> Path:
    """``s3://bucket/key`` into ``target`` with the deployment's credentials. A missing object, a
    bucket the store refuses and a key the tenant was not given are all answered alike (not_found)."""
    # boto3 only where S3 is used (see core.s3)
    from botocore.exceptions import BotoCoreError, ClientError

    place = sources.parse_s3(url)
    client = S3Store.for_bucket(settings, place.bucket).client
    limit = settings.max_upload_bytes
    try:
        answer = client.get_object(Bucket=place.bucket, Key=place.key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound", "403", "AccessDenied"):
            raise TingxieError(f"no source {url[:200]}", code="not_found") from None
        raise FetchFailedError(f"the object store refused to read {url[:200]}: {code}") from None
    except BotoCoreError as exc:
        raise FetchFailedError(f"could not read {url[:200]}: {exc}") from None
    total = int(answer.get("ContentLength", 0))
    body = answer["Body"]
    try:
        if total > limit:
            raise _too_large(url, total, limit)
        received = 0
        target.parent.mkdir(parents=True, exist_ok=True)
        duration = DurationCheck(settings, url, target, total)
        with open(target, "wb") as fh:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                received += len(chunk)
                if received > limit:
                    raise _too_large(url, received, limit)
                fh.write(chunk)
                duration.arrived(fh, received)
                if on_progress is not None:
                    on_progress(received, total)
    except BotoCoreError as exc:
        target.unlink(missing_ok=True)
        raise FetchFailedError(f"reading {url[:200]} broke off: {exc}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        body.close()
    return target


def fetch(settings: Settings, url: str, target: Path, on_progress: Progress | None = None) -> Path:
    """The link's bytes in ``target``; the caller has checked the tenant may name it (core.sources)."""
    if url.startswith("s3://"):
        return fetch_s3(settings, url, target, on_progress)
    return fetch_http(settings, url, target, on_progress)
