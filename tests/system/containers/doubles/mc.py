#!/usr/bin/env python3
"""The few `mc` (MinIO client) commands the compose stack uses, against moto's S3 server: `alias set`,
`mb --ignore-existing`, `ready`; user and policy administration succeed with nothing to do (moto
accepts any key pair)."""
import json
import os
import sys
from pathlib import Path

import boto3

ALIASES = Path(os.environ.get("HOME", "/tmp")) / ".mc-aliases.json"


def client(alias: str):
    url, key, secret = json.loads(ALIASES.read_text())[alias]
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1")


def main(args: list[str]) -> int:
    if args[:2] == ["alias", "set"]:
        aliases = json.loads(ALIASES.read_text()) if ALIASES.exists() else {}
        aliases[args[2]] = args[3:6]
        ALIASES.write_text(json.dumps(aliases))
        return 0
    if args[0] == "mb":
        target = [a for a in args[1:] if not a.startswith("--")][0]
        alias, bucket = target.split("/", 1)
        s3 = client(alias)
        if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket=bucket)
        return 0
    if args[0] == "ready":
        import urllib.request
        urllib.request.urlopen("http://127.0.0.1:9000/moto-api/", timeout=3)
        return 0
    if args[0] == "admin":
        return 0
    print(f"mc (test double): unsupported {' '.join(args)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
