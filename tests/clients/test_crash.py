"""Crash safety: concurrent uploads, SIGKILL at random moments, restart, verify.

Every acknowledged write must read back byte-identical after the restart; nothing that was never
sent may appear; a write that was in flight at the kill may be there or not, but if it is there
it is complete and exactly what was sent (or, for an overwrite, the previous acknowledged value);
the data dir's tmp/ is empty once the restarted server is listening.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import new_credentials, TarnServer, make_boto3_client

MiB = 1024 * 1024
ROUNDS = 4
WORKERS = 16


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}      # key -> sha256 of the last acknowledged value
        self.pending: dict[str, str] = {}    # key -> sha256 of an attempt not (yet) acknowledged
        self.errors: list[str] = []          # failures while the server was supposed to be alive
        self.ops = 0
        self.bytes = 0


def _worker(s3, bucket: str, wid: int, rnd: int, st: State, killed: threading.Event, deadline: float,
            go: threading.Barrier):
    rng = random.Random(hash((wid, rnd, os.getpid())))
    go.wait()
    with st.lock:
        mine: list[str] = [k for k in st.acked if k.startswith(f"w{wid}/")]
    seq = 0
    while not killed.is_set() and time.monotonic() < deadline:
        seq += 1
        if mine and rng.random() < 0.2:
            key = rng.choice(mine)  # overwrite one of this worker's keys
        else:
            key = f"w{wid}/r{rnd}/{seq:04d}"
        multipart = rng.random() < 0.12
        if multipart:
            size = 5 * MiB + rng.randint(0, MiB)
        else:
            size = rng.choice([0, rng.randint(1, 1024), rng.randint(1, 3 * MiB), rng.randint(1, 3 * MiB)])
        data = rng.randbytes(size)
        sha = hashlib.sha256(data).hexdigest()
        with st.lock:
            st.pending[key] = sha
        try:
            if multipart:
                uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                parts = []
                for n, chunk in enumerate([data[:5 * MiB], data[5 * MiB:]], start=1):
                    e = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=chunk)["ETag"]
                    parts.append({"PartNumber": n, "ETag": e})
                s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                             MultipartUpload={"Parts": parts})
            else:
                s3.put_object(Bucket=bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError, OSError) as e:
            if not killed.is_set():
                with st.lock:
                    st.errors.append(f"{key}: {type(e).__name__}: {e}")
            return
        with st.lock:
            st.acked[key] = sha
            del st.pending[key]
            st.ops += 1
            st.bytes += size
        if key not in mine:
            mine.append(key)


def _read_sha(s3, bucket, key) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def _list_all(s3, bucket) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _data_files(server: TarnServer) -> list:
    return [p for p in server.data_dir.rglob("*") if p.is_file()
            and server.tmp_dir not in p.parents and not p.name.startswith("tarn.db")]


def _assert_no_orphans(server: TarnServer, bucket: str, slack: int = 3):
    """Black-box check for leftover blobs: delete every object and abort every upload, restart
    (startup cleans orphans), and the data dir must hold nothing but the database and a few
    fixed files. Blobs orphaned by the SIGKILL rounds would still be there."""
    s3 = make_boto3_client(server)
    before = len(_data_files(server))
    keys = _list_all(s3, bucket)
    for i in range(0, len(keys), 1000):
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                     "Quiet": True})
        assert not r.get("Errors"), r.get("Errors")
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
    assert _list_all(s3, bucket) == []
    assert server.stop() == 0
    server.start()
    deadline = time.monotonic() + 10
    while True:
        left = _data_files(server)
        if len(left) <= slack or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(left) <= slack, (
        f"{len(left)} files left in the data dir (of {before}) after deleting everything and restarting: "
        f"orphaned blobs? {[str(p.relative_to(server.data_dir)) for p in left[:10]]}")


@pytest.mark.timeout(180)
def test_sigkill_during_concurrent_uploads(tmp_path):
    t0 = time.monotonic()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ak, sk = new_credentials()
    server = TarnServer(data_dir, ak, sk, tmp_path).start()
    bucket = "crash-test"
    make_boto3_client(server).create_bucket(Bucket=bucket)
    st = State()
    rng = random.Random()
    try:
        for rnd in range(ROUNDS):
            killed = threading.Event()
            run_for = rng.uniform(1.5, 4.0)
            deadline = time.monotonic() + run_for + 30
            go = threading.Barrier(WORKERS + 1)
            clients = [make_boto3_client(server, connect_timeout=2, read_timeout=30) for _ in range(WORKERS)]
            ops_before = st.ops
            threads = [threading.Thread(target=_worker, args=(clients[w], bucket, w, rnd, st, killed, deadline, go),
                                        daemon=True) for w in range(WORKERS)]
            for t in threads:
                t.start()
            go.wait()
            time.sleep(run_for)
            killed.set()
            server.kill()
            for t in threads:
                t.join(timeout=40)
            assert not any(t.is_alive() for t in threads), "upload workers did not stop after the kill"
            assert not st.errors, f"requests failed while the server was up (round {rnd}): {st.errors[:5]}"
            print(f"round {rnd}: killed after {run_for:.1f}s, {st.ops - ops_before} writes acknowledged, "
                  f"{len(st.pending)} in flight")

            server.start()  # same data dir, same credentials, new port
            left = server.tmp_entries()
            assert left == [], f"round {rnd}: tmp/ not empty after restart: {left[:10]}"
            s3 = make_boto3_client(server)
            visible = set(_list_all(s3, bucket))
            # nothing that was never sent
            unknown = visible - set(st.acked) - set(st.pending)
            assert not unknown, f"round {rnd}: unacknowledged keys visible: {sorted(unknown)[:10]}"
            # every acknowledged key is there (unless an overwrite of it was in flight, it must be intact)
            missing = [k for k in st.acked if k not in visible]
            assert not missing, f"round {rnd}: acknowledged keys lost: {missing[:10]}"
            # in-flight writes: absent, or complete and equal to what was sent (or the previous value)
            for key, sha in list(st.pending.items()):
                if key in visible:
                    got = _read_sha(s3, bucket, key)
                    allowed = {sha, st.acked.get(key)}
                    assert got in allowed, f"round {rnd}: in-flight key {key} has bytes that were never sent"
                    st.acked[key] = got
                del st.pending[key]
            # acknowledged writes of this round read back byte-identical
            for key, sha in st.acked.items():
                if f"/r{rnd}/" in key or rnd == ROUNDS - 1:
                    assert _read_sha(s3, bucket, key) == sha, f"round {rnd}: {key} differs from acknowledged bytes"
            assert time.monotonic() - t0 < 170, "crash test is taking too long"
        assert st.ops >= 10 * ROUNDS, f"too few acknowledged writes to mean anything: {st.ops}"
        # a final clean shutdown and restart keeps everything and leaves tmp/ empty
        rc = server.stop()
        assert rc == 0, f"tarn exited with {rc} on SIGTERM"
        server.start()
        assert server.tmp_entries() == []
        s3 = make_boto3_client(server)
        assert set(_list_all(s3, bucket)) == set(st.acked)
        _assert_no_orphans(server, bucket)
    finally:
        server.stop()
