"""Shared fixtures for the real-client black-box tests.

Every test module gets a fresh `tarn serve` process on a free port with a fresh data
directory and random root credentials. Tests talk to it only through real clients
(aws-cli, boto3, s3cmd, curl) or raw sockets.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
TARN_BIN = os.environ.get("TARN_BIN") or str(REPO / "target" / "debug" / "tarn")
REGION = "us-east-1"
LISTEN_RE = re.compile(r"^tarn listening on (http://127\.0\.0\.1:(\d+))\s*$")
START_TIMEOUT = 30.0


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # Never skip: a missing client tool is a broken test environment.
        raise RuntimeError(f"required tool {name!r} is not on PATH; run scripts/test")
    return path


class TarnServer:
    """One `tarn serve` process over a data directory that may outlive it."""

    def __init__(self, data_dir: pathlib.Path, access_key: str, secret_key: str, log_dir: pathlib.Path):
        self.data_dir = pathlib.Path(data_dir)
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_dir = pathlib.Path(log_dir)
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.port: int | None = None
        self.starts = 0
        self._drain: threading.Thread | None = None

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tmp_dir(self) -> pathlib.Path:
        return self.data_dir / "tmp"

    def start(self) -> "TarnServer":
        if not os.path.exists(TARN_BIN):
            raise RuntimeError(f"tarn binary not found at {TARN_BIN}; build it with cargo build")
        self.starts += 1
        env = dict(os.environ)
        env["TARN_ROOT_ACCESS_KEY"] = self.access_key
        env["TARN_ROOT_SECRET_KEY"] = self.secret_key
        env.setdefault("RUST_LOG", "info")
        # New buckets default to the raw zone, whose objects are write-once (a Tarn rule on top of
        # S3). This suite checks S3 semantics (overwrite, delete), so its buckets live in the
        # transformed zone, which follows plain S3 rules.
        env.setdefault("TARN__ZONES__DEFAULT_ZONE", "transformed")
        env.setdefault("TARN__ZONES__CREATE_ZONE_BUCKETS", "false")
        self.log_path = self.log_dir / f"tarn-{self.starts}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [TARN_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise RuntimeError(f"tarn did not print its listening line within {START_TIMEOUT}s; log: {self.log_tail()}")
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tarn exited with {self.proc.returncode} before listening; log: {self.log_tail()}")
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                self.proc.wait(timeout=5)
                raise RuntimeError(f"tarn closed stdout (rc={self.proc.returncode}) before listening; log: {self.log_tail()}")
            buf += chunk
            if b"\n" in buf:
                line, rest = buf.split(b"\n", 1)
                m = LISTEN_RE.match(line.decode("utf-8", "replace"))
                assert m, f"first stdout line must be 'tarn listening on http://127.0.0.1:PORT', got {line!r}"
                self.endpoint = m.group(1)
                self.port = int(m.group(2))
                self._log.write(b"[stdout] " + line + b"\n" + rest)
                break
        # Keep draining stdout so the server can never block on a full pipe.
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()
        return self

    def _drain_stdout(self):
        proc = self.proc
        try:
            for line in proc.stdout:
                try:
                    self._log.write(b"[stdout] " + line)
                except ValueError:
                    return
        except Exception:
            pass

    def log_tail(self, n: int = 4000) -> str:
        try:
            self._log.flush()
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except Exception:
            return "<no log>"

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        rc = self.proc.returncode
        self._close()
        return rc

    def kill(self) -> None:
        """SIGKILL: simulate a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close()

    def _close(self):
        if self._drain is not None:
            self._drain.join(timeout=2)
        try:
            self.proc.stdout.close()
        except Exception:
            pass
        try:
            self._log.close()
        except Exception:
            pass
        self.proc = None

    # -- helpers used by many tests --------------------------------------------------

    def client(self, **config_kwargs):
        return make_boto3_client(self, **config_kwargs)

    def tmp_entries(self) -> list[str]:
        if not self.tmp_dir.exists():
            return []
        return sorted(str(p.relative_to(self.tmp_dir)) for p in self.tmp_dir.rglob("*") if p.is_file())

    def wait_tmp_empty(self, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = self.tmp_entries()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)


def new_credentials() -> tuple[str, str]:
    ak = "TK" + secrets.token_hex(9).upper()
    sk = secrets.token_urlsafe(30)
    return ak, sk


def make_boto3_client(server: TarnServer, access_key=None, secret_key=None, region=REGION, **config_kwargs):
    import boto3
    from botocore.config import Config

    cfg = dict(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    cfg.update(config_kwargs)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=access_key or server.access_key,
        aws_secret_access_key=secret_key or server.secret_key,
        region_name=region,
        config=Config(**cfg),
    )


def unique_bucket(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def start_server(tmp_root: pathlib.Path) -> TarnServer:
    data_dir = tmp_root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    ak, sk = new_credentials()
    return TarnServer(data_dir, ak, sk, tmp_root).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A fresh tarn server for the whole test module."""
    root = tmp_path_factory.mktemp("tarn")
    srv = start_server(root)
    yield srv
    if srv.proc is not None:
        alive = srv.proc.poll() is None
        rc = srv.stop()
        assert alive, f"tarn died during the module (rc={rc}); log tail:\n{srv.log_tail()}"


@pytest.fixture(scope="module")
def s3(server):
    return server.client()


@pytest.fixture
def bucket(s3):
    name = unique_bucket()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


class AwsCli:
    """Runs the venv's aws-cli v1 with an isolated config against the server."""

    def __init__(self, server: TarnServer, home: pathlib.Path, access_key=None, secret_key=None, region=REGION):
        self.exe = _require_tool("aws")
        self.server = server
        self.home = pathlib.Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file = self.home / "aws-config"
        self.creds_file = self.home / "aws-credentials"
        self.config_file.write_text("[default]\n")
        self.creds_file.write_text("")
        self.access_key = access_key or server.access_key
        self.secret_key = secret_key or server.secret_key
        self.region = region

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            HOME=str(self.home),
            AWS_CONFIG_FILE=str(self.config_file),
            AWS_SHARED_CREDENTIALS_FILE=str(self.creds_file),
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            AWS_PAGER="",
            PYTHONIOENCODING="utf-8",
        )
        return env

    def configure_set(self, key: str, value: str) -> None:
        r = subprocess.run([self.exe, "configure", "set", key, value], env=self.env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    def run(self, *args, check: bool = True, timeout: float = 110, cwd=None) -> subprocess.CompletedProcess:
        cmd = [self.exe, "--endpoint-url", self.server.endpoint, "--cli-read-timeout", "30",
               *[str(a) for a in args]]
        r = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=timeout, cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(map(str, args))} failed rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
            )
        return r

    def json(self, *args, **kw):
        import json

        r = self.run(*args, "--output", "json", **kw)
        return json.loads(r.stdout) if r.stdout.strip() else {}


@pytest.fixture(scope="module")
def aws(server, tmp_path_factory):
    return AwsCli(server, tmp_path_factory.mktemp("awshome"))


def raw_http(server: TarnServer, data: bytes, timeout: float = 10.0, read_all: bool = True) -> bytes:
    """Send raw bytes to the server and return whatever it answers until close/timeout."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not read_all and b"\r\n\r\n" in out:
                    break
        except socket.timeout:
            pass
        return out
    finally:
        s.close()


def parse_status(resp: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    assert m, f"not an HTTP response: {resp[:200]!r}"
    return int(m.group(1))


def sha256_file(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random(path, size: int, seed: int | None = None) -> pathlib.Path:
    import random

    rnd = random.Random(seed if seed is not None else secrets.randbits(32))
    path = pathlib.Path(path)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n
    return path
