"""Where a job's media may come from besides an upload (``source_url``), and where its transcript
may be delivered (``output_url``): the deployment's policy, checked at the door and again by the
worker.

- ``http://`` and ``https://`` links are fetched by a worker (core.fetch); the door checks only
  their form, the worker checks every address it connects to.
- ``s3://bucket/key`` is read with the deployment's S3 credentials, so only what the deployment
  lists for the tenant may be read: ``TINGXIE_TENANT_SOURCES``. Delivery writes with the same
  credentials, only under ``TINGXIE_TENANT_OUTPUTS``. Anything else is answered as if it did not
  exist (404 ``not_found``), so a tenant learns nothing of buckets it was not given.

Both settings: ``tenant=s3://bucket/prefix/,s3://other-bucket;tenant2=s3://...``. A prefix is a
folder: ``s3://calls/acme`` admits ``s3://calls/acme/x.wav``, not ``s3://calls/acme-old/x.wav``;
``s3://calls`` admits the whole bucket.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote, urlsplit

from core.errors import BadOptionError, NotFoundError
from core.tenants import tenant_name

MAX_URL_CHARS = 2048
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
HTTP_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class BucketKey:
    """An object (or, for a prefix, a folder) in an S3 bucket."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3(url: str, *, what: str = "source_url", code: str = "bad_source_url") -> BucketKey:
    """``s3://bucket/key`` split; a key with empty, ``.`` or ``..`` segments is refused (some
    S3-compatible stores normalise them, which would step out of a listed prefix)."""
    if not url.startswith("s3://"):
        raise BadOptionError(f"{what} must start with s3://", code=code)
    bucket, _, key = url[len("s3://"):].partition("/")
    if not _BUCKET.match(bucket):
        raise BadOptionError(f"{what}: {bucket[:80]!r} is not an S3 bucket name", code=code)
    segments = key.split("/")
    if any(s in (".", "..") for s in segments) or "//" in key or key.startswith("/"):
        raise BadOptionError(f"{what}: the key may not hold empty, '.' or '..' segments", code=code)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise BadOptionError(f"{what}: the key holds control characters", code=code)
    return BucketKey(bucket, key)


def parse_prefix(url: str) -> BucketKey:
    """A listed prefix (settings): the key is a folder, ending in ``/`` unless it is the whole bucket."""
    place = parse_s3(url.rstrip("/") if url.count("/") > 2 else url, what="prefix", code="bad_option")
    key = place.key.strip("/")
    return BucketKey(place.bucket, key + "/" if key else "")


def parse_tenant_prefixes(text: str) -> dict[str, tuple[str, ...]]:
    """``tenant=s3://bucket/prefix/,s3://b2;tenant2=s3://b3/x`` -> {tenant: (s3 URLs...)}, each a
    folder (:func:`parse_prefix`)."""
    result: dict[str, tuple[str, ...]] = {}
    for item in (x.strip() for x in text.split(";") if x.strip()):
        tenant, sep, urls = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r}: expected tenant=s3://bucket/prefix/[,s3://...], tenants separated by ';'")
        tenant = tenant_name(tenant.strip())
        prefixes = []
        for url in (u.strip() for u in urls.split(",") if u.strip()):
            try:
                prefixes.append(parse_prefix(url).url)
            except BadOptionError as exc:
                raise ValueError(f"{tenant}: {exc.message}") from None
        if not prefixes:
            raise ValueError(f"{tenant}: no s3:// prefix given")
        result[tenant] = tuple(dict.fromkeys((*result.get(tenant, ()), *prefixes)))
    return result


def format_tenant_prefixes(value: Mapping[str, tuple[str, ...]]) -> str:
    return ";".join(f"{tenant}={','.join(urls)}" for tenant, urls in value.items())


def _within(place: BucketKey, prefixes: tuple[str, ...]) -> bool:
    for url in prefixes:
        allowed = parse_prefix(url)
        if place.bucket == allowed.bucket and place.key.startswith(allowed.key):
            return True
    return False


def check_http(url: str) -> None:
    """The form of an http(s) link (the worker checks where it leads)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise BadOptionError(f"source_url is not a valid URL ({exc})", code="bad_source_url") from None
    if parts.scheme not in HTTP_SCHEMES:
        raise BadOptionError("source_url must be an http://, https:// or s3:// URL", code="bad_source_url")
    if not parts.hostname:
        raise BadOptionError("source_url has no host", code="bad_source_url")
    if parts.username is not None or parts.password is not None:
        raise BadOptionError("source_url may not carry a user name or password", code="bad_source_url")


def check_source(source_url: str, tenant: str, tenant_sources: Mapping[str, tuple[str, ...]]) -> None:
    """At the door and in the worker: the link's form, and for ``s3://`` that the tenant was
    given it (404 ``not_found`` otherwise, the same answer as for a key that does not exist)."""
    if not isinstance(source_url, str) or not source_url:
        raise BadOptionError("source_url must be a URL", code="bad_source_url")
    if len(source_url) > MAX_URL_CHARS:
        raise BadOptionError(f"source_url is longer than {MAX_URL_CHARS} characters", code="bad_source_url")
    if source_url.startswith("s3://"):
        place = parse_s3(source_url)
        if not place.key or place.key.endswith("/"):
            raise BadOptionError("source_url: s3://bucket/key names one object, not a folder", code="bad_source_url")
        if not _within(place, tenant_sources.get(tenant, ())):
            raise NotFoundError(f"no source {source_url[:200]}")
        return
    check_http(source_url)


def check_output(output_url: str, tenant: str, tenant_outputs: Mapping[str, tuple[str, ...]]) -> BucketKey:
    """The folder ``output_url`` names, if the tenant may write there (404 ``not_found`` otherwise)."""
    if len(output_url) > MAX_URL_CHARS:
        raise BadOptionError(f"output_url is longer than {MAX_URL_CHARS} characters", code="bad_output_url")
    place = parse_s3(output_url, what="output_url", code="bad_output_url")
    folder = BucketKey(place.bucket, place.key if not place.key or place.key.endswith("/") else place.key + "/")
    if not _within(folder, tenant_outputs.get(tenant, ())):
        raise NotFoundError(f"no output location {output_url[:200]}")
    return folder


def display_name(source_url: str) -> str:
    """What a job fetched from ``source_url`` is called: the last segment of its path, unquoted."""
    if source_url.startswith("s3://"):
        return source_url.rsplit("/", 1)[-1]
    path = urlsplit(source_url).path
    return unquote(path.rsplit("/", 1)[-1])
