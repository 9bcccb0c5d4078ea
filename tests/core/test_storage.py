"""The media store seam on both backends: a local directory and S3 (a real S3 server over HTTP,
the boto3 path production uses). Same contract: put consumes the spooled file, local_copy gives a
file to decode, read serves byte ranges, delete_job leaves nothing."""
from __future__ import annotations

import os

import pytest

from core import storage
from core.settings import Settings
from core.storage import MediaGoneError, StorageUnavailableError, open_store

JOB = "0123456789abcdef0123456789abcdef"
KEY = f"{JOB}/source.flac"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.network)])
def store_settings(request, tmp_path) -> Settings:
    if request.param == "local":
        return Settings(data_dir=tmp_path / "data")
    server = request.getfixturevalue("s3_server")
    return Settings(data_dir=tmp_path / "data", **server.storage_settings(request.getfixturevalue("s3_bucket")))


def _spooled(settings: Settings, data: bytes):
    storage.ensure_dirs(settings)
    with storage.open_spool_file(settings) as fh:
        fh.write(data)
    return fh.name


def test_put_stat_read_copy_and_delete(store_settings, tmp_path):
    store = open_store(store_settings)
    data = os.urandom(40 * 1024**2 + 12345)  # above the multipart threshold on S3: three parts
    spooled = _spooled(store_settings, data)
    store.put(spooled, KEY, content_type="audio/flac")
    assert not os.path.exists(spooled)  # consumed
    assert store.keys() == [KEY]
    stat = store.stat(KEY)
    assert stat.size_bytes == len(data) and stat.etag
    assert b"".join(store.read(KEY, 0, 100)) == data[:100]
    assert b"".join(store.read(KEY, len(data) - 7, len(data))) == data[-7:]
    middle = b"".join(store.read(KEY, 20 * 1024**2 - 3, 20 * 1024**2 + 5))  # across a part boundary
    assert middle == data[20 * 1024**2 - 3:20 * 1024**2 + 5]
    scratch = tmp_path / "scratch" / JOB
    with store.local_copy(KEY, scratch) as path:
        assert path.read_bytes() == data
        copied = path
    if store_settings.object_storage:
        assert copied.parent == scratch and not copied.exists()  # the scratch copy is removed after
        assert not (store_settings.data_dir / "media").exists()  # nothing stored on this host
    store.delete_job(JOB)
    assert store.keys() == []
    with pytest.raises(MediaGoneError):
        store.stat(KEY)
    with pytest.raises(MediaGoneError):
        with store.local_copy(KEY, scratch):
            pass


def test_a_key_not_of_our_making_is_refused(store_settings):
    store = open_store(store_settings)
    for key in ("../etc/passwd", "/etc/passwd", f"{JOB}/../../x", f"{JOB}/other.flac"):
        with pytest.raises(MediaGoneError):
            store.stat(key)


@pytest.mark.network
def test_an_unreachable_store_is_an_error_naming_it(tmp_path):
    from tests.support.service import free_port

    settings = Settings(data_dir=tmp_path, storage_url="s3://nowhere/x",
                        s3_endpoint_url=f"http://127.0.0.1:{free_port()}", s3_access_key_id="a",
                        s3_secret_access_key="b", s3_addressing_style="path")
    store = open_store(settings)
    spooled = _spooled(settings, b"abc")
    with pytest.raises(StorageUnavailableError) as caught:
        store.put(spooled, KEY, content_type="audio/flac")
    assert caught.value.code == "unavailable" and "s3://nowhere/x/" in caught.value.message
    assert not os.path.exists(spooled)


def test_a_missing_bucket_is_an_error_naming_it(tmp_path, s3_server):
    settings = Settings(data_dir=tmp_path, **s3_server.storage_settings("no-such-bucket-here"))
    with pytest.raises(StorageUnavailableError) as caught:
        open_store(settings).put(_spooled(settings, b"abc"), KEY, content_type="audio/flac")
    assert "NoSuchBucket" in caught.value.message and "s3://no-such-bucket-here/media/" in caught.value.message


def test_unfinished_uploads_under_the_prefix_are_aborted_once_old_enough(tmp_path, s3_server, s3_bucket):
    """Only multipart uploads under this deployment's prefix, begun longer ago than the age given;
    another deployment's (another prefix) and completed objects are left alone."""
    client = s3_server.client()
    ours = client.create_multipart_upload(Bucket=s3_bucket, Key=f"media/{KEY}")["UploadId"]
    theirs = client.create_multipart_upload(Bucket=s3_bucket, Key=f"other/{KEY}")["UploadId"]
    client.upload_part(Bucket=s3_bucket, Key=f"media/{KEY}", UploadId=ours, PartNumber=1, Body=b"x" * 1024)
    settings = Settings(data_dir=tmp_path, **s3_server.storage_settings(s3_bucket))
    storage.ensure_dirs(settings)
    store = open_store(settings)
    store.put(_spooled(settings, b"kept"), KEY, content_type="audio/flac")
    assert store.abort_incomplete(3600) == []  # too young
    assert store.abort_incomplete(0) == [f"media/{KEY}"]
    left = client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [theirs]
    assert store.keys() == [KEY]
    assert store.abort_incomplete(0) == []


def test_readiness_check_of_each_store(store_settings, tmp_path):
    storage.ensure_dirs(store_settings)
    open_store(store_settings).check()
    with pytest.raises(StorageUnavailableError) as caught:
        open_store(Settings(data_dir=tmp_path / "never-made")).check()
    assert "never-made" in caught.value.message
