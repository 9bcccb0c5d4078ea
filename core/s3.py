"""S3-compatible object storage through boto3: one code path for MinIO, Ceph RGW, AWS S3 and Aliyun
OSS (``TINGXIE_STORAGE_URL=s3://bucket/prefix``, ``TINGXIE_S3_*``).

Uploads go up with boto3's managed transfer: a file above :data:`PART_BYTES` becomes a multipart
upload read from the spooled file part by part, so an upload is never held in memory. A worker
downloads the object into its scratch directory and decodes that copy; ``/media`` reads byte
ranges. boto3 is imported when the first client is made, never at import.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from core.settings import Settings
from core.media_store import (
    CHUNK_BYTES,
    MediaGoneError,
    StorageUnavailableError,
    StoredObject,
    check_key,
)

# Multipart threshold and part size: S3 allows 10,000 parts, so 16 MiB parts carry 160 GiB, far
# above the upload cap; a part is read from disk as it is sent.
PART_BYTES = 16 * 1024**2
# Parts in flight at once per upload or download.
CONCURRENCY = 4
# The readiness check's one request: no retries, and an answer within this long.
CHECK_TIMEOUT_S = 3.0

log = logging.getLogger("tingxie.storage")


class S3Store:
    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str = "", region: str = "",
                 access_key_id: str = "", secret_access_key: str = "", addressing_style: str = "auto"):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client_kwargs = dict(endpoint_url=endpoint_url or None, region_name=region or "us-east-1",
                                   aws_access_key_id=access_key_id or None,
                                   aws_secret_access_key=secret_access_key or None)
        self._addressing_style = addressing_style
        self._client = None
        self._check_client = None
        self._unfinished_seen: dict[str, float] = {}  # upload id -> when this process first listed it
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Store":
        bucket, _, prefix = settings.storage_url[len("s3://"):].partition("/")
        return cls(bucket, prefix, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                   access_key_id=settings.s3_access_key_id, secret_access_key=settings.s3_secret_access_key,
                   addressing_style=settings.s3_addressing_style)

    @classmethod
    def for_bucket(cls, settings: Settings, bucket: str) -> "S3Store":
        """A client of another bucket with the deployment's endpoint and credentials (links and
        delivery, core.sources): only its :attr:`client` is used, never the keyed methods."""
        return cls(bucket, "", endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                   access_key_id=settings.s3_access_key_id, secret_access_key=settings.s3_secret_access_key,
                   addressing_style=settings.s3_addressing_style)

    @property
    def client(self):
        """One client per process (boto3 clients are thread-safe; sessions are not)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client(retries={"max_attempts": 5, "mode": "standard"},
                                                 max_pool_connections=32)
            return self._client

    def _make_client(self, **config):
        # boto3 (a second of imports, tens of MiB) loads only in a process that uses an S3 store.
        import boto3
        from botocore.config import Config

        config = Config(
            s3={"addressing_style": self._addressing_style},
            signature_version="s3v4",
            # Checksums only where S3 requires them: several S3-compatible stores (OSS, older
            # Ceph RGW and MinIO) refuse the CRC headers newer boto3 adds by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **config,
        )
        return boto3.session.Session().client("s3", config=config, **self._client_kwargs)

    def _transfer(self):
        from boto3.s3.transfer import TransferConfig  # boto3 only where S3 is used (see _make_client)

        return TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES,
                              max_concurrency=CONCURRENCY)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, what: str, key: str = "") -> Iterator[None]:
        """boto3's errors as ours: a missing object is gone (410); anything else names the store."""
        # boto3 only where S3 is used (see _make_client).
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, Boto3Error) as caught:
            # The managed transfer wraps the service's answer (S3UploadFailedError from a ClientError).
            exc = caught if isinstance(caught, ClientError) else caught.__context__
            if not isinstance(exc, ClientError):
                raise StorageUnavailableError(f"could not {what} {key} at the media store {self.url}: "
                                              f"{type(caught).__name__}") from None
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchUpload"):
                raise MediaGoneError("the media file of this job is no longer stored") from None
            raise StorageUnavailableError(f"the media store {self.url} refused to {what} {key}: {code} "
                                          f"{exc.response.get('Error', {}).get('Message', '')}".rstrip()) from None
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"could not {what} {key} at the media store {self.url}: {exc}") from None

    def put(self, path: Path, key: str, *, content_type: str) -> None:
        try:
            with self._errors("store", key):
                self.client.upload_file(str(path), self.bucket, self._name(key),
                                        ExtraArgs={"ContentType": content_type}, Config=self._transfer())
        finally:
            Path(path).unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_copy(self, key: str, scratch: Path) -> Iterator[Path]:
        scratch.mkdir(parents=True, exist_ok=True)
        target = scratch / Path(check_key(key)).name
        try:
            with self._errors("read", key):
                self.client.download_file(self.bucket, self._name(key), str(target), Config=self._transfer())
            yield target
        finally:
            target.unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject:
        with self._errors("read", key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        return StoredObject(int(head["ContentLength"]), head.get("ETag", "").strip('"'), head["LastModified"])

    def read(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        if stop <= start:
            return
        with self._errors("read", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key),
                                          Range=f"bytes={start}-{stop - 1}")["Body"]
        try:
            with self._errors("read", key):
                yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    def _names(self, prefix: str) -> Iterator[str]:
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"]

    def delete_job(self, job_id: str) -> None:
        # One DeleteObject per key (a job has one): the batch call needs a body checksum that
        # stores disagree on (boto3's CRC32 against OSS's and older MinIO's Content-MD5).
        for name in list(self._names(f"{self.prefix}{job_id}/")):
            with self._errors("delete", job_id):
                self.client.delete_object(Bucket=self.bucket, Key=name)

    def keys(self) -> list[str]:
        return sorted(name[len(self.prefix):] for name in self._names(self.prefix))

    def check(self) -> None:
        with self._lock:
            if self._check_client is None:
                self._check_client = self._make_client(retries={"max_attempts": 1, "mode": "standard"},
                                                       connect_timeout=CHECK_TIMEOUT_S, read_timeout=CHECK_TIMEOUT_S)
        with self._errors("reach", "its bucket"):
            self._check_client.head_bucket(Bucket=self.bucket)

    def abort_incomplete(self, older_than_s: float) -> list[str]:
        """Multipart uploads under this deployment's prefix begun over ``older_than_s`` ago whose
        last part, if any, also arrived over ``older_than_s`` ago (a slow upload still sending is
        left alone), and that this process has seen unfinished for as long, are aborted, their parts
        freed. Times are the store's (``Initiated``, the parts' ``LastModified``) and this host's
        (the first listing): neither a host's clock nor a store's alone makes a live upload look old
        (moto reports every upload as initiated in 2010). An upload that fails is aborted by boto3's
        transfer as it fails; these are the ones whose process died."""
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=older_than_s)
        now = time.monotonic()
        aborted = []
        with self._errors("list the unfinished uploads under", self.prefix):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=self.prefix)
            listed = [u for page in pages for u in page.get("Uploads", ())]
        seen = self._unfinished_seen = {u["UploadId"]: self._unfinished_seen.get(u["UploadId"], now) for u in listed}
        begun = [u for u in listed if u["Initiated"] < cutoff and now - seen[u["UploadId"]] >= older_than_s]
        for upload in begun:
            name, upload_id = upload["Key"], upload["UploadId"]
            try:
                with self._errors("abort the unfinished upload of", name):
                    parts = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=name,
                                                                             UploadId=upload_id)
                    if any(p["LastModified"] >= cutoff for page in parts for p in page.get("Parts", ())):
                        continue
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            except MediaGoneError:  # NoSuchUpload: another sweeper aborted it, or it completed
                continue
            aborted.append(name)
        if aborted:
            log.info("aborted %d unfinished multipart upload(s) under %s", len(aborted), self.url)
        return aborted
