"""aws-cli v1 (the `aws` from the venv) against a real tarn server."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import AwsCli, sha256_file, unique_bucket, write_random

MiB = 1024 * 1024


def curl(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


def put(s3, bucket, key, body=b"x"):
    return s3.put_object(Bucket=bucket, Key=key, Body=body)


def all_keys(s3, bucket, prefix=""):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def assert_aws_error(r: subprocess.CompletedProcess, code: str, operation: str | None = None):
    assert r.returncode != 0, f"expected failure with {code}, got rc=0: {r.stdout}"
    assert code in r.stderr, f"expected {code} in stderr, got: {r.stderr}"
    if operation:
        assert f"calling the {operation} operation" in r.stderr, r.stderr


# --- buckets -----------------------------------------------------------------------------

def test_mb_ls_rb(aws):
    name = unique_bucket("mb")
    r = aws.run("s3", "mb", f"s3://{name}")
    assert r.stdout.strip() == f"make_bucket: {name}"
    r = aws.run("s3", "ls")
    listed = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert name in listed
    # each line is "YYYY-MM-DD HH:MM:SS name"
    line = next(l for l in r.stdout.splitlines() if l.endswith(name))
    assert time.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S")
    out = aws.json("s3api", "list-buckets")
    assert name in [b["Name"] for b in out["Buckets"]]
    assert "Owner" in out
    # creating it again: we own it, so us-east-1 semantics say BucketAlreadyOwnedByYou
    r = aws.run("s3api", "create-bucket", "--bucket", name, check=False)
    # us-east-1 legacy: 200 OK (no-op) for a bucket you own; BucketAlreadyOwnedByYou elsewhere
    if r.returncode != 0:
        assert_aws_error(r, "BucketAlreadyOwnedByYou", "CreateBucket")
    r = aws.run("s3api", "head-bucket", "--bucket", name)
    assert r.returncode == 0
    r = aws.run("s3", "rb", f"s3://{name}")
    assert r.stdout.strip() == f"remove_bucket: {name}"
    r = aws.run("s3", "ls")
    assert name not in r.stdout
    r = aws.run("s3api", "head-bucket", "--bucket", name, check=False)
    assert r.returncode != 0 and ("404" in r.stderr or "Not Found" in r.stderr), r.stderr


def test_get_bucket_location_and_versioning(aws, s3, bucket):
    out = aws.json("s3api", "get-bucket-location", "--bucket", bucket)
    assert "LocationConstraint" in out
    # us-east-1 buckets report a null (empty) LocationConstraint
    assert out["LocationConstraint"] in (None, ""), out
    out = aws.json("s3api", "get-bucket-versioning", "--bucket", bucket)
    assert "Status" not in out, out
    assert "MFADelete" not in out, out


def test_list_object_versions_unversioned(aws, s3, bucket):
    put(s3, bucket, "a", b"aaa")
    put(s3, bucket, "b/c", b"cc")
    out = aws.json("s3api", "list-object-versions", "--bucket", bucket)
    versions = out["Versions"]
    assert [v["Key"] for v in versions] == ["a", "b/c"]
    for v in versions:
        assert v["VersionId"] == "null"
        assert v["IsLatest"] is True
    assert versions[0]["Size"] == 3
    assert versions[0]["ETag"] == '"%s"' % hashlib.md5(b"aaa").hexdigest()
    assert not out.get("DeleteMarkers")


def test_bucket_subresources_absent(aws, bucket):
    r = aws.run("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert_aws_error(r, "NoSuchTagSet", "GetBucketTagging")
    r = aws.run("s3api", "get-bucket-cors", "--bucket", bucket, check=False)
    assert_aws_error(r, "NoSuchCORSConfiguration", "GetBucketCors")
    r = aws.run("s3api", "get-bucket-policy", "--bucket", bucket, check=False)
    assert_aws_error(r, "NoSuchBucketPolicy", "GetBucketPolicy")


# --- cp ------------------------------------------------------------------------------------

def test_cp_small_up_and_down(aws, s3, bucket, workdir):
    src = write_random(workdir / "small.bin", 12345)
    r = aws.run("s3", "cp", "--no-progress", src, f"s3://{bucket}/dir/small.bin")
    assert r.stdout.startswith("upload: ") and f"small.bin to s3://{bucket}/dir/small.bin" in r.stdout, r.stdout
    head = s3.head_object(Bucket=bucket, Key="dir/small.bin")
    assert head["ContentLength"] == 12345
    assert head["ETag"] == '"%s"' % hashlib.md5(src.read_bytes()).hexdigest()
    dst = workdir / "back.bin"
    r = aws.run("s3", "cp", f"s3://{bucket}/dir/small.bin", dst)
    assert "download:" in r.stdout
    assert sha256_file(dst) == sha256_file(src)
    # to stdout and from stdin
    r = subprocess.run([aws.exe, "--endpoint-url", aws.server.endpoint, "s3", "cp",
                        f"s3://{bucket}/dir/small.bin", "-"], env=aws.env(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == src.read_bytes()
    r = subprocess.run([aws.exe, "--endpoint-url", aws.server.endpoint, "s3", "cp", "-",
                        f"s3://{bucket}/stdin.txt"], env=aws.env(), input=b"from stdin\n",
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert s3.get_object(Bucket=bucket, Key="stdin.txt")["Body"].read() == b"from stdin\n"


def test_cp_empty_file(aws, s3, bucket, workdir):
    src = workdir / "empty"
    src.write_bytes(b"")
    aws.run("s3", "cp", src, f"s3://{bucket}/empty")
    head = s3.head_object(Bucket=bucket, Key="empty")
    assert head["ContentLength"] == 0
    assert head["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    dst = workdir / "empty.back"
    aws.run("s3", "cp", f"s3://{bucket}/empty", dst)
    assert dst.read_bytes() == b""


def test_cp_recursive_with_empty_files(aws, s3, bucket, workdir):
    """Empty files next to others: aws-cli sends every PUT with Expect: 100-continue on pooled
    connections, so a zero-length PUT followed by another PUT on the same connection must work."""
    src = workdir / "mixed"
    src.mkdir()
    names = []
    for i in range(6):
        (src / f"e{i}.empty").write_bytes(b"")
        (src / f"f{i}.txt").write_bytes(b"data %d\n" % i)
        names += [f"e{i}.empty", f"f{i}.txt"]
    r = aws.run("s3", "cp", "--no-progress", "--recursive", src, f"s3://{bucket}/mixed/")
    assert r.stdout.count("upload:") == 12, r.stdout + r.stderr
    assert sorted(all_keys(s3, bucket, "mixed/")) == sorted("mixed/" + n for n in names)


def test_cp_multipart_large(aws, s3, bucket, workdir):
    size = 17 * MiB + 4321  # aws-cli: 8 MiB threshold and chunks -> 3 parts
    src = write_random(workdir / "big.bin", size)
    r = aws.run("s3", "cp", src, f"s3://{bucket}/big.bin")
    assert "upload:" in r.stdout
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    # multipart ETag = md5 of the concatenated part md5s, suffixed by the part count
    data = src.read_bytes()
    md5s = b"".join(hashlib.md5(data[i:i + 8 * MiB]).digest() for i in range(0, size, 8 * MiB))
    assert head["ETag"] == '"%s-3"' % hashlib.md5(md5s).hexdigest()
    dst = workdir / "big.back"
    aws.run("s3", "cp", f"s3://{bucket}/big.bin", dst)  # ranged, parallel GETs
    assert sha256_file(dst) == sha256_file(src)
    # no leftover upload
    ups = s3.list_multipart_uploads(Bucket=bucket)
    assert not ups.get("Uploads")


def test_cp_with_metadata_and_content_type(aws, s3, bucket, workdir):
    src = workdir / "page.html"
    src.write_text("<html></html>")
    aws.run("s3", "cp", src, f"s3://{bucket}/page.html", "--metadata", "owner=alice,team=data",
            "--cache-control", "max-age=60")
    head = s3.head_object(Bucket=bucket, Key="page.html")
    assert head["ContentType"] == "text/html"  # guessed by aws-cli from the extension
    assert head["Metadata"] == {"owner": "alice", "team": "data"}
    assert head["CacheControl"] == "max-age=60"


# --- ls --------------------------------------------------------------------------------

def test_ls_prefixes_and_recursive(aws, s3, bucket):
    for k, body in [("a/1.txt", b"1"), ("a/2.txt", b"22"), ("a/b/3.txt", b"333"), ("c.txt", b"4444")]:
        put(s3, bucket, k, body)
    r = aws.run("s3", "ls", f"s3://{bucket}/")
    lines = [l.split() for l in r.stdout.splitlines()]
    assert ["PRE", "a/"] in lines
    files = [l for l in lines if l[0] != "PRE"]
    assert [f[-1] for f in files] == ["c.txt"]
    assert files[0][-2] == "4"
    r = aws.run("s3", "ls", f"s3://{bucket}/a/")
    lines = [l.split() for l in r.stdout.splitlines()]
    assert ["PRE", "b/"] in lines
    assert sorted(l[-1] for l in lines if l[0] != "PRE") == ["1.txt", "2.txt"]
    r = aws.run("s3", "ls", f"s3://{bucket}", "--recursive")
    lines = [l.split() for l in r.stdout.splitlines()]
    assert [(l[-1], l[-2]) for l in lines] == [("a/1.txt", "1"), ("a/2.txt", "2"), ("a/b/3.txt", "3"), ("c.txt", "4")]
    r = aws.run("s3", "ls", f"s3://{bucket}/a/b", "--recursive", "--summarize")
    assert "Total Objects: 1" in r.stdout
    assert "Total Size: 3" in r.stdout


# --- sync ---------------------------------------------------------------------------------

def _make_tree(root: pathlib.Path):
    files = {
        "top.txt": b"top level\n",
        "sub/one.bin": os.urandom(1000),
        "sub/two.bin": os.urandom(70000),
        "sub/deeper/three.csv": b"a,b\n1,2\n",
        "with space/quote's & more.txt": b"odd name",
        "unicodé/ファイル.txt": "héllo".encode(),
        "empty.dat": b"",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def _read_tree(root: pathlib.Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_sync_both_ways_and_resync_is_noop(aws, s3, bucket, workdir):
    up = workdir / "up"
    files = _make_tree(up)
    # files must look older than the server's LastModified, as they do in practice
    past = time.time() - 120
    for p in up.rglob("*"):
        if p.is_file():
            os.utime(p, (past, past))
    r = aws.run("s3", "sync", "--no-progress", up, f"s3://{bucket}/tree")
    assert r.stdout.count("upload:") == len(files), r.stdout
    assert sorted(all_keys(s3, bucket, "tree/")) == sorted("tree/" + k for k in files)
    for k, data in files.items():
        assert s3.get_object(Bucket=bucket, Key="tree/" + k)["Body"].read() == data

    r = aws.run("s3", "sync", "--no-progress", up, f"s3://{bucket}/tree")
    assert r.stdout.strip() == "", f"re-sync uploaded something:\n{r.stdout}"

    # a changed file (different size) is uploaded again, and only it
    (up / "sub/one.bin").write_bytes(b"changed")
    r = aws.run("s3", "sync", "--no-progress", up, f"s3://{bucket}/tree")
    assert r.stdout.count("upload:") == 1 and "sub/one.bin" in r.stdout, r.stdout
    files["sub/one.bin"] = b"changed"

    down = workdir / "down"
    r = aws.run("s3", "sync", "--no-progress", f"s3://{bucket}/tree", down)
    assert r.stdout.count("download:") == len(files), r.stdout
    assert _read_tree(down) == files

    r = aws.run("s3", "sync", "--no-progress", f"s3://{bucket}/tree", down)
    assert r.stdout.strip() == "", f"re-sync downloaded something:\n{r.stdout}"
    r = aws.run("s3", "sync", "--no-progress", up, f"s3://{bucket}/tree")
    assert r.stdout.strip() == "", f"re-sync uploaded something:\n{r.stdout}"

    # --delete removes remote objects that are gone locally
    (up / "top.txt").unlink()
    r = aws.run("s3", "sync", "--no-progress", up, f"s3://{bucket}/tree", "--delete")
    assert "delete: s3://%s/tree/top.txt" % bucket in r.stdout, r.stdout
    assert "tree/top.txt" not in all_keys(s3, bucket, "tree/")


# --- rm -----------------------------------------------------------------------------------

def test_rm_single_and_recursive(aws, s3, bucket):
    for i in range(25):
        put(s3, bucket, f"p/{i:02d}", b"x")
    put(s3, bucket, "p/nested/deep", b"x")
    put(s3, bucket, "keep/me", b"x")
    put(s3, bucket, "pp", b"x")
    r = aws.run("s3", "rm", f"s3://{bucket}/pp")
    assert f"delete: s3://{bucket}/pp" in r.stdout
    r = aws.run("s3", "rm", f"s3://{bucket}/p/", "--recursive")
    assert r.stdout.count("delete:") == 26, r.stdout
    assert all_keys(s3, bucket) == ["keep/me"]
    # rb refuses a non-empty bucket...
    r = aws.run("s3", "rb", f"s3://{bucket}", check=False)
    assert_aws_error(r, "BucketNotEmpty")
    # ...and rb --force empties it first
    r = aws.run("s3", "rb", f"s3://{bucket}", "--force")
    assert f"remove_bucket: {bucket}" in r.stdout


# --- presign ---------------------------------------------------------------------------------

def test_presign_default_sigv2_then_curl(aws, s3, bucket, workdir):
    data = os.urandom(300000)
    key = "shared/report 2024+final.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    r = aws.run("s3", "presign", f"s3://{bucket}/{key}")
    url = r.stdout.strip()
    assert url.startswith(aws.server.endpoint)
    assert "AWSAccessKeyId=" in url and "Signature=" in url and "Expires=" in url, url
    out = workdir / "fetched"
    c = curl("-o", str(out), "-w", "%{http_code}", url)
    assert c.stdout.decode() == "200", c.stderr
    assert out.read_bytes() == data
    # tampering with the signature must fail
    bad = url.replace("Signature=", "Signature=AAAA")
    c = curl("-o", str(out), "-w", "%{http_code}", bad)
    assert c.stdout.decode() == "403"
    assert b"SignatureDoesNotMatch" in out.read_bytes()


def test_presign_sigv4_then_curl(server, s3, bucket, workdir, tmp_path_factory):
    cli = AwsCli(server, tmp_path_factory.mktemp("awsv4"))
    cli.configure_set("default.s3.signature_version", "s3v4")
    data = os.urandom(5000)
    key = "ключ/ファイル.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    r = cli.run("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "600")
    url = r.stdout.strip()
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=600" in url, url
    out = workdir / "fetched"
    c = curl("-o", str(out), "-w", "%{http_code}", url)
    assert c.stdout.decode() == "200", c.stderr
    assert out.read_bytes() == data
    # expired link
    r = cli.run("s3", "presign", f"s3://{bucket}/{key}", "--expires-in", "1")
    time.sleep(2.2)
    c = curl("-o", str(out), "-w", "%{http_code}", r.stdout.strip())
    assert c.stdout.decode() == "403"
    body = out.read_bytes()
    assert b"<Code>AccessDenied</Code>" in body and b"expired" in body, body


def test_sigv4_cli_commands(server, s3, bucket, workdir, tmp_path_factory):
    """aws-cli with signature_version s3v4 configured also works for ordinary commands."""
    cli = AwsCli(server, tmp_path_factory.mktemp("awsv4b"))
    cli.configure_set("default.s3.signature_version", "s3v4")
    cli.configure_set("default.s3.payload_signing_enabled", "true")
    src = write_random(workdir / "f.bin", 100000)
    cli.run("s3", "cp", src, f"s3://{bucket}/f.bin")
    dst = workdir / "g.bin"
    cli.run("s3", "cp", f"s3://{bucket}/f.bin", dst)
    assert dst.read_bytes() == src.read_bytes()


# --- s3api objects --------------------------------------------------------------------------

def test_s3api_put_head_get_range(aws, bucket, workdir):
    body = workdir / "body.txt"
    body.write_bytes(b"0123456789abcdefghij")
    out = aws.json("s3api", "put-object", "--bucket", bucket, "--key", "doc.txt", "--body", body,
                   "--content-type", "text/x-custom", "--metadata", "color=blue,Shape=Round",
                   "--content-disposition", 'attachment; filename="d.txt"', "--cache-control", "no-cache",
                   "--content-encoding", "identity", "--expires", "2030-01-01T00:00:00Z")
    etag = '"%s"' % hashlib.md5(b"0123456789abcdefghij").hexdigest()
    assert out["ETag"] == etag
    head = aws.json("s3api", "head-object", "--bucket", bucket, "--key", "doc.txt")
    assert head["ContentLength"] == 20
    assert head["ContentType"] == "text/x-custom"
    assert head["ETag"] == etag
    assert head["Metadata"] == {"color": "blue", "shape": "Round"}
    assert head["ContentDisposition"] == 'attachment; filename="d.txt"'
    assert head["CacheControl"] == "no-cache"
    assert head["ContentEncoding"] == "identity"
    assert "2030" in head["Expires"]
    assert head.get("AcceptRanges") == "bytes"
    outfile = workdir / "range.out"
    g = aws.json("s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", "--range", "bytes=2-5", outfile)
    assert outfile.read_bytes() == b"2345"
    assert g["ContentRange"] == "bytes 2-5/20"
    assert g["ContentLength"] == 4
    g = aws.json("s3api", "get-object", "--bucket", bucket, "--key", "doc.txt", "--range", "bytes=-3", outfile)
    assert outfile.read_bytes() == b"hij"
    assert g["ContentRange"] == "bytes 17-19/20"


def test_s3api_copy_object_directives(aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain",
                  Metadata={"origin": "one"})
    out = aws.json("s3api", "copy-object", "--bucket", bucket, "--key", "copy1",
                   "--copy-source", f"{bucket}/src")
    assert out["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"payload").hexdigest()
    assert "LastModified" in out["CopyObjectResult"]
    h = s3.head_object(Bucket=bucket, Key="copy1")
    assert h["Metadata"] == {"origin": "one"}
    assert h["ContentType"] == "text/plain"
    aws.json("s3api", "copy-object", "--bucket", bucket, "--key", "copy2", "--copy-source", f"{bucket}/src",
             "--metadata-directive", "REPLACE", "--metadata", "origin=two,extra=yes",
             "--content-type", "application/json")
    h = s3.head_object(Bucket=bucket, Key="copy2")
    assert h["Metadata"] == {"origin": "two", "extra": "yes"}
    assert h["ContentType"] == "application/json"
    assert s3.get_object(Bucket=bucket, Key="copy2")["Body"].read() == b"payload"
    # copying an object onto itself without REPLACE is an InvalidRequest
    r = aws.run("s3api", "copy-object", "--bucket", bucket, "--key", "src", "--copy-source", f"{bucket}/src",
                check=False)
    assert_aws_error(r, "InvalidRequest", "CopyObject")
    # onto itself with REPLACE changes metadata
    aws.json("s3api", "copy-object", "--bucket", bucket, "--key", "src", "--copy-source", f"{bucket}/src",
             "--metadata-directive", "REPLACE", "--metadata", "origin=self")
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"origin": "self"}
    # missing source
    r = aws.run("s3api", "copy-object", "--bucket", bucket, "--key", "x", "--copy-source", f"{bucket}/nope",
                check=False)
    assert_aws_error(r, "NoSuchKey", "CopyObject")


def test_s3api_list_objects_v2_params(aws, s3, bucket):
    keys = ["a/1", "a/2", "a/sub/3", "b/4", "c", "d/5"]
    for k in keys:
        put(s3, bucket, k, b"z")
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--delimiter", "/", "--no-paginate")
    assert [c["Prefix"] for c in out["CommonPrefixes"]] == ["a/", "b/", "d/"]
    assert [o["Key"] for o in out["Contents"]] == ["c"]
    assert out["KeyCount"] == 4
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "a/", "--delimiter", "/",
                   "--no-paginate")
    assert [o["Key"] for o in out["Contents"]] == ["a/1", "a/2"]
    assert [c["Prefix"] for c in out["CommonPrefixes"]] == ["a/sub/"]
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--max-keys", "2", "--no-paginate")
    assert [o["Key"] for o in out["Contents"]] == ["a/1", "a/2"]
    assert out["IsTruncated"] is True
    assert out["MaxKeys"] == 2
    token = out["NextContinuationToken"]
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--max-keys", "2", "--no-paginate",
                   "--continuation-token", token)
    assert [o["Key"] for o in out["Contents"]] == ["a/sub/3", "b/4"]
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--start-after", "b/4", "--no-paginate")
    assert [o["Key"] for o in out["Contents"]] == ["c", "d/5"]
    assert out["IsTruncated"] is False
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "zzz", "--no-paginate")
    assert "Contents" not in out and out["KeyCount"] == 0
    # the paginated form (aws-cli follows continuation tokens itself)
    out = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "2")
    assert [o["Key"] for o in out["Contents"]] == keys


def test_s3api_delete_objects(aws, s3, bucket, workdir):
    for k in ["d1", "d2", "d3", "keep"]:
        put(s3, bucket, k, b"1")
    spec = workdir / "del.json"
    spec.write_text(json.dumps({"Objects": [{"Key": "d1"}, {"Key": "d2"}, {"Key": "d3"}, {"Key": "never-existed"}],
                                "Quiet": False}))
    out = aws.json("s3api", "delete-objects", "--bucket", bucket, "--delete", f"file://{spec}")
    assert sorted(d["Key"] for d in out["Deleted"]) == ["d1", "d2", "d3", "never-existed"]
    assert not out.get("Errors")
    assert all_keys(s3, bucket) == ["keep"]


def test_s3api_object_tagging(aws, s3, bucket):
    put(s3, bucket, "tagged", b"t")
    aws.run("s3api", "put-object-tagging", "--bucket", bucket, "--key", "tagged",
            "--tagging", "TagSet=[{Key=env,Value=prod},{Key=team,Value=data eng}]")
    out = aws.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "tagged")
    assert sorted((t["Key"], t["Value"]) for t in out["TagSet"]) == [("env", "prod"), ("team", "data eng")]
    aws.run("s3api", "delete-object-tagging", "--bucket", bucket, "--key", "tagged")
    out = aws.json("s3api", "get-object-tagging", "--bucket", bucket, "--key", "tagged")
    assert out["TagSet"] == []
    r = aws.run("s3api", "get-object-tagging", "--bucket", bucket, "--key", "missing", check=False)
    assert_aws_error(r, "NoSuchKey", "GetObjectTagging")


def test_s3api_multipart_lifecycle(aws, s3, bucket, workdir):
    p1 = write_random(workdir / "p1", 5 * MiB)
    p2 = write_random(workdir / "p2", 5 * MiB)
    p3 = write_random(workdir / "p3", 1234)
    up = aws.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "mp/obj",
                  "--content-type", "application/x-mp", "--metadata", "m=1")
    uid = up["UploadId"]
    assert up["Bucket"] == bucket and up["Key"] == "mp/obj" and uid
    etags = {}
    for n, p in [(1, p1), (2, p2), (3, p3)]:
        r = aws.json("s3api", "upload-part", "--bucket", bucket, "--key", "mp/obj", "--upload-id", uid,
                     "--part-number", str(n), "--body", p)
        etags[n] = r["ETag"]
        assert r["ETag"] == '"%s"' % hashlib.md5(p.read_bytes()).hexdigest()
    # re-uploading a part number replaces it
    r = aws.json("s3api", "upload-part", "--bucket", bucket, "--key", "mp/obj", "--upload-id", uid,
                 "--part-number", "3", "--body", p3)
    lp = aws.json("s3api", "list-parts", "--bucket", bucket, "--key", "mp/obj", "--upload-id", uid)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in lp["Parts"]] == [
        (1, 5 * MiB, etags[1]), (2, 5 * MiB, etags[2]), (3, 1234, etags[3])]
    lu = aws.json("s3api", "list-multipart-uploads", "--bucket", bucket)
    assert [(u["Key"], u["UploadId"]) for u in lu["Uploads"]] == [("mp/obj", uid)]
    # the object is not visible before completion
    r = aws.run("s3api", "head-object", "--bucket", bucket, "--key", "mp/obj", check=False)
    assert r.returncode != 0
    parts = workdir / "parts.json"
    parts.write_text(json.dumps({"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]}))
    done = aws.json("s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "mp/obj",
                    "--upload-id", uid, "--multipart-upload", f"file://{parts}")
    md5s = b"".join(hashlib.md5(p.read_bytes()).digest() for p in (p1, p2, p3))
    assert done["ETag"] == '"%s-3"' % hashlib.md5(md5s).hexdigest()
    assert done["Key"] == "mp/obj" and done["Bucket"] == bucket
    obj = s3.get_object(Bucket=bucket, Key="mp/obj")
    assert obj["Body"].read() == p1.read_bytes() + p2.read_bytes() + p3.read_bytes()
    assert obj["ContentType"] == "application/x-mp"
    assert obj["Metadata"] == {"m": "1"}
    assert not aws.json("s3api", "list-multipart-uploads", "--bucket", bucket).get("Uploads")

    # abort
    up2 = aws.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "mp/aborted")["UploadId"]
    aws.json("s3api", "upload-part", "--bucket", bucket, "--key", "mp/aborted", "--upload-id", up2,
             "--part-number", "1", "--body", p3)
    aws.run("s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "mp/aborted", "--upload-id", up2)
    r = aws.run("s3api", "list-parts", "--bucket", bucket, "--key", "mp/aborted", "--upload-id", up2, check=False)
    assert_aws_error(r, "NoSuchUpload", "ListParts")
    r = aws.run("s3api", "head-object", "--bucket", bucket, "--key", "mp/aborted", check=False)
    assert r.returncode != 0


# --- errors ----------------------------------------------------------------------------------

def test_error_no_such_bucket(aws):
    missing = unique_bucket("missing")
    r = aws.run("s3api", "get-object", "--bucket", missing, "--key", "k", "/dev/null", check=False)
    assert_aws_error(r, "NoSuchBucket", "GetObject")
    assert "The specified bucket does not exist" in r.stderr
    assert r.returncode == 255
    r = aws.run("s3", "ls", f"s3://{missing}", check=False)
    assert_aws_error(r, "NoSuchBucket")
    r = aws.run("s3api", "delete-bucket", "--bucket", missing, check=False)
    assert_aws_error(r, "NoSuchBucket", "DeleteBucket")


def test_error_no_such_key(aws, bucket, workdir):
    r = aws.run("s3api", "get-object", "--bucket", bucket, "--key", "nope", str(workdir / "o"), check=False)
    assert_aws_error(r, "NoSuchKey", "GetObject")
    assert "The specified key does not exist." in r.stderr
    assert r.returncode == 255
    r = aws.run("s3", "cp", f"s3://{bucket}/nope", str(workdir / "o"), check=False)
    assert r.returncode != 0
    assert "404" in r.stderr or "Not Found" in r.stderr, r.stderr


def test_error_bucket_not_empty(aws, s3, bucket):
    put(s3, bucket, "x", b"1")
    r = aws.run("s3api", "delete-bucket", "--bucket", bucket, check=False)
    assert_aws_error(r, "BucketNotEmpty", "DeleteBucket")
    assert s3.head_object(Bucket=bucket, Key="x")["ContentLength"] == 1


@pytest.mark.parametrize("name", ["ab", "Bad_Name", "UPPER", "-leading", "trailing-", "a..b", "192.168.5.4",
                                  "x" * 64, "xn--punycode", "bucket-s3alias", "api"])
def test_error_invalid_bucket_name(aws, name):
    r = aws.run("s3api", "create-bucket", f"--bucket={name}", check=False)
    assert r.returncode != 0, f"{name!r} was accepted"
    if name != "api":  # reserved for the JSON API: any refusal will do
        assert "InvalidBucketName" in r.stderr, r.stderr


def test_error_wrong_secret(server, tmp_path_factory):
    cli = AwsCli(server, tmp_path_factory.mktemp("wrongsk"), secret_key=server.secret_key + "x")
    r = cli.run("s3api", "list-buckets", check=False)
    assert_aws_error(r, "SignatureDoesNotMatch", "ListBuckets")
    r = cli.run("s3", "ls", check=False)
    assert r.returncode != 0 and "SignatureDoesNotMatch" in r.stderr


def test_error_unknown_access_key(server, tmp_path_factory):
    cli = AwsCli(server, tmp_path_factory.mktemp("unknownak"), access_key="AKIAUNKNOWNKEY000000")
    r = cli.run("s3api", "list-buckets", check=False)
    assert_aws_error(r, "InvalidAccessKeyId", "ListBuckets")
