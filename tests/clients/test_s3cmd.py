"""s3cmd (from the venv) with SigV2 and with SigV4 against tarn."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import _require_tool, sha256_file, unique_bucket, write_random

MiB = 1024 * 1024


@pytest.fixture(params=["sigv2", "sigv4"])
def s3cmd(request, server, tmp_path):
    exe = _require_tool("s3cmd")
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {server.access_key}\n"
        f"secret_key = {server.secret_key}\n"
        f"host_base = {server.host_port}\n"
        f"host_bucket = {server.host_port}\n"
        "bucket_location = us-east-1\n"
        "use_https = False\n"
        f"signature_v2 = {'True' if request.param == 'sigv2' else 'False'}\n"
        "check_ssl_certificate = False\n"
        "guess_mime_type = True\n"
        "progress_meter = False\n"
        "socket_timeout = 60\n"
        "max_retries = 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)

    def run(*args, check=True):
        r = subprocess.run([exe, "-c", str(cfg), *map(str, args)], capture_output=True, text=True,
                           timeout=110, env=env, cwd=tmp_path)
        if check and r.returncode != 0:
            raise AssertionError(f"s3cmd {' '.join(map(str, args))} rc={r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    run.mode = request.param
    return run


def test_s3cmd_basic_cycle(s3cmd, s3, tmp_path):
    name = unique_bucket("s3cmd")
    r = s3cmd("mb", f"s3://{name}")
    assert f"Bucket 's3://{name}/' created" in r.stdout
    r = s3cmd("ls")
    assert f"s3://{name}" in r.stdout

    small = write_random(tmp_path / "small.txt", 1000)
    r = s3cmd("put", small, f"s3://{name}/dir/small.txt")
    assert "upload:" in r.stdout or "->" in r.stdout, r.stdout
    big = write_random(tmp_path / "big.bin", 11 * MiB + 5)
    s3cmd("put", "--multipart-chunk-size-mb=5", big, f"s3://{name}/big.bin")
    assert s3.head_object(Bucket=name, Key="big.bin")["ETag"].strip('"').endswith("-3")

    r = s3cmd("ls", f"s3://{name}/")
    assert "DIR" in r.stdout and f"s3://{name}/dir/" in r.stdout
    assert f"s3://{name}/big.bin" in r.stdout
    r = s3cmd("ls", "--recursive", f"s3://{name}")
    assert f"s3://{name}/dir/small.txt" in r.stdout and f"s3://{name}/big.bin" in r.stdout
    assert "1000" in next(l for l in r.stdout.splitlines() if l.endswith("dir/small.txt"))

    got = tmp_path / "got.txt"
    s3cmd("get", f"s3://{name}/dir/small.txt", got)
    assert sha256_file(got) == sha256_file(small)
    got_big = tmp_path / "got.bin"
    s3cmd("get", f"s3://{name}/big.bin", got_big)  # s3cmd checks the md5 it stored in metadata
    assert sha256_file(got_big) == sha256_file(big)

    r = s3cmd("info", f"s3://{name}/dir/small.txt")
    assert "File size: 1000" in r.stdout
    r = s3cmd("info", f"s3://{name}")
    assert "(bucket)" in r.stdout and "Versioning:" in r.stdout

    # rb of a non-empty bucket fails
    r = s3cmd("rb", f"s3://{name}", check=False)
    assert r.returncode != 0 and "BucketNotEmpty" in (r.stdout + r.stderr)

    s3cmd("del", f"s3://{name}/dir/small.txt")
    s3cmd("del", f"s3://{name}/big.bin")
    r = s3cmd("ls", "--recursive", f"s3://{name}")
    assert r.stdout.strip() == ""
    r = s3cmd("rb", f"s3://{name}")
    assert f"Bucket 's3://{name}/' removed" in r.stdout
    r = s3cmd("ls")
    assert f"s3://{name}" not in r.stdout


def test_s3cmd_sync_and_missing(s3cmd, s3, tmp_path):
    name = unique_bucket("s3cmds")
    s3cmd("mb", f"s3://{name}")
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "one.txt").write_bytes(b"one")
    (src / "a" / "two.txt").write_bytes(b"two")
    (src / "a" / "b" / "three name.txt").write_bytes(b"three")
    s3cmd("sync", f"{src}/", f"s3://{name}/mirror/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"])
    assert keys == ["mirror/a/b/three name.txt", "mirror/a/two.txt", "mirror/one.txt"]
    r = s3cmd("sync", f"{src}/", f"s3://{name}/mirror/")
    assert "upload:" not in r.stdout
    r = s3cmd("get", f"s3://{name}/no-such-key", tmp_path / "x", check=False)
    assert r.returncode != 0
    assert any(w in r.stderr for w in ("404", "NoSuchKey", "Not Found", "does not exist")), r.stderr
    s3cmd("del", "--recursive", "--force", f"s3://{name}/")
    s3cmd("rb", f"s3://{name}")
