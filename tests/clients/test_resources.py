"""Bodies stream through the server: its peak memory does not grow with object size."""

from __future__ import annotations

import hashlib
import pathlib

import pytest

from conftest import write_random

MiB = 1024 * 1024
SIZE = 160 * MiB


def _vm_hwm_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.mark.timeout(180)
def test_large_put_and_get_do_not_buffer_in_memory(server, s3, bucket, tmp_path):
    pid = server.proc.pid
    src = write_random(tmp_path / "large.bin", SIZE, seed=7)
    before = _vm_hwm_kib(pid)
    with open(src, "rb") as f:
        s3.put_object(Bucket=bucket, Key="large", Body=f)  # one PUT, no multipart
    after_put = _vm_hwm_kib(pid)
    h = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key="large")["Body"]
    n = 0
    for chunk in iter(lambda: body.read(1 << 20), b""):
        h.update(chunk)
        n += len(chunk)
    after_get = _vm_hwm_kib(pid)
    assert n == SIZE
    with open(src, "rb") as f:
        assert h.hexdigest() == hashlib.file_digest(f, "sha256").hexdigest()
    # a server that held the body in memory would grow by >= 160 MiB
    grown_put = (after_put - before) // 1024
    grown_get = (after_get - after_put) // 1024
    print(f"VmHWM before {before} KiB, after PUT {after_put} KiB, after GET {after_get} KiB")
    assert grown_put < 64, f"peak RSS grew by {grown_put} MiB during a {SIZE // MiB} MiB PUT"
    assert grown_get < 64, f"peak RSS grew by {grown_get} MiB during a {SIZE // MiB} MiB GET"
