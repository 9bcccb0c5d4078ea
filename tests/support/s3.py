"""A real S3 server for tests: moto's standalone server (``moto[server]``) in a process of its
own, spoken to over HTTP by the same boto3 code production runs against MinIO, Ceph RGW, AWS S3
or OSS."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.service import free_port

ACCESS_KEY, SECRET_KEY = "tingxie-test", "tingxie-test-secret"


@dataclass
class S3Server:
    process: subprocess.Popen
    url: str

    @classmethod
    def start(cls, log_path: Path, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> "S3Server":
        """Listening on ``host``, on a free port; ``prefix`` runs it inside another host's network
        (``ip netns exec HOST``)."""
        port = free_port()
        with open(log_path, "ab") as log:  # the child writes to its own copy
            process = subprocess.Popen([*prefix, sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the S3 server exited: {log_path.read_text(errors='replace')}")
            try:
                requests.get(url, timeout=5)
                return cls(process, url)
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
                time.sleep(0.2)
        process.kill()
        raise RuntimeError("the S3 server did not start")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def new_bucket(self) -> str:
        name = f"tingxie-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return [item["Key"] for item in listing.get("Contents", ())]

    def storage_settings(self, bucket: str, prefix: str = "media") -> dict:
        """Settings fields for a store in ``bucket`` under ``prefix``."""
        return dict(storage_url=f"s3://{bucket}/{prefix}", s3_endpoint_url=self.url, s3_region="us-east-1",
                    s3_access_key_id=ACCESS_KEY, s3_secret_access_key=SECRET_KEY, s3_addressing_style="path")
