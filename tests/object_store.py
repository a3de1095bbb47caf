"""A real S3-compatible server on 127.0.0.1: the standalone server of `moto[server]`.

    with S3Server(log_dir) as s3:
        s3.create_bucket("unimontage")
        env = s3.env()     # AWS_* for Lance (object_store) and pyarrow's S3 filesystem

The credentials are dummies, but distinctive ones (`SECRET`, `KEY_ID`), so tests can prove
they never reach a lineage record, a card or a log. The server runs in its own process
group and is stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.local_cluster import free_port

KEY_ID = "UNIMONTAGETESTKEYID0"
SECRET = "unimontage-test-secret-7f3a9c2e1b"


class S3Server:
    def __init__(self, log_dir: str | Path, start_timeout_s: float = 60.0):
        self.log_dir = Path(log_dir)
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a process (a driver, a Ray node) needs to read and write this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": KEY_ID,
                "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> S3Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        moto = str(Path(sys.executable).parent / "moto_server")
        log = open(self.log_dir / "moto_server.log", "wb")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.log_dir / 'moto_server.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=2).read()
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {self.start_timeout_s:.0f} s")

    def client(self) -> Any:
        import boto3

        e = self.env()
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, region_name=e["AWS_REGION"])

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
