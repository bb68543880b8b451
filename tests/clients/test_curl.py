"""curl --aws-sigv4, anonymous curl, and raw HTTP on a socket against tarn."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import socket
import subprocess
import time

import pytest

import s3raw
from conftest import parse_status, raw_http, write_random

MiB = 1024 * 1024


def curl(*args, timeout=60):
    r = subprocess.run(["curl", "-sS", *map(str, args)], capture_output=True, timeout=timeout)
    return r


def curl_i(*args):
    """curl with -i; returns (status, headers dict lower-case, body bytes)."""
    r = curl("-i", *args)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # skip interim 100 Continue responses
    while out.startswith(b"HTTP/1.1 100"):
        out = out.split(b"\r\n\r\n", 1)[1]
    return s3raw.parse_response(out)


@pytest.fixture
def sig(server):
    # S3 requires x-amz-content-sha256 on every SigV4 request; curl < 8 does not add it by itself
    # (newer curl adds UNSIGNED-PAYLOAD for the s3 service), so pass it as users of curl 7.x must.
    return ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{server.access_key}:{server.secret_key}",
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]


@pytest.fixture
def sig_plain(server):
    return ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{server.access_key}:{server.secret_key}"]


@pytest.fixture
def signer(server):
    return s3raw.Signer(server.access_key, server.secret_key)


def test_curl_sigv4_put_get_delete(server, s3, bucket, sig, tmp_path):
    src = write_random(tmp_path / "up.bin", 200_000)
    url = f"{server.endpoint}/{bucket}/curl/up.bin"
    st, h, body = curl_i(*sig, "-T", src, url)
    assert st == 200, body
    assert h["etag"] == '"%s"' % hashlib.md5(src.read_bytes()).hexdigest()
    assert h.get("x-amz-request-id")
    # a signed payload hash works too
    data = b"signed payload body"
    st, h, body = curl_i(*sig[:4], "-H", f"x-amz-content-sha256: {hashlib.sha256(data).hexdigest()}",
                         "-X", "PUT", "--data-binary", data.decode(), f"{server.endpoint}/{bucket}/curl/signed")
    assert st == 200, body
    assert s3.get_object(Bucket=bucket, Key="curl/signed")["Body"].read() == data
    # and a wrong one is rejected
    st, h, body = curl_i(*sig[:4], "-H", f"x-amz-content-sha256: {hashlib.sha256(b'other').hexdigest()}",
                         "-X", "PUT", "--data-binary", data.decode(), f"{server.endpoint}/{bucket}/curl/wrong")
    assert st == 400 and s3raw.xml_code(body) == "XAmzContentSHA256Mismatch", body
    st, _, _ = curl_i(*sig, "-I", f"{server.endpoint}/{bucket}/curl/wrong")
    assert st == 404

    out = tmp_path / "down.bin"
    r = curl(*sig, "-o", out, "-w", "%{http_code}", url)
    assert r.stdout == b"200", r.stderr
    assert out.read_bytes() == src.read_bytes()
    st, h, body = curl_i(*sig, "-H", "Range: bytes=10-19", url)
    assert st == 206 and body == src.read_bytes()[10:20]
    st, h, body = curl_i(*sig, "-I", url)
    assert st == 200 and int(h["content-length"]) == 200_000
    # listing with a query string
    st, h, body = curl_i(*sig, f"{server.endpoint}/{bucket}?list-type=2&prefix=curl%2F")
    assert st == 200
    assert b"<Key>curl/up.bin</Key>" in body and b"<KeyCount>2</KeyCount>" in body
    assert h["content-type"].startswith("application/xml")
    st, h, body = curl_i(*sig, "-X", "DELETE", url)
    assert st == 204
    st, h, body = curl_i(*sig, url)
    assert st == 404 and s3raw.xml_code(body) == "NoSuchKey"
    # DELETE of a missing key is still 204
    st, h, body = curl_i(*sig, "-X", "DELETE", url)
    assert st == 204


def test_curl_plain_sigv4_without_content_sha256(server, s3, bucket, sig_plain):
    """curl 7.x signs a GET with the empty-payload hash but sends no x-amz-content-sha256.
    AWS answers 400 InvalidRequest (missing header); accepting it is fine too. Anything else is not."""
    s3.put_object(Bucket=bucket, Key="plain", Body=b"plain curl")
    st, h, body = curl_i(*sig_plain, f"{server.endpoint}/{bucket}/plain")
    if st == 200:
        assert body == b"plain curl"
    else:
        assert st == 400, (st, body)
        assert b"x-amz-content-sha256" in body, body
        _assert_error_doc(body, h, s3raw.xml_code(body))


def test_curl_wrong_secret(server, bucket):
    st, h, body = curl_i("--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{server.access_key}:nope",
                         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", f"{server.endpoint}/{bucket}")
    assert st == 403 and s3raw.xml_code(body) == "SignatureDoesNotMatch"


def _assert_error_doc(body: bytes, headers: dict, code: str):
    assert body.startswith(b"<?xml") or body.lstrip().startswith(b"<Error>"), body
    assert f"<Code>{code}</Code>".encode() in body, body
    assert b"<Message>" in body
    m = re.search(rb"<RequestId>([^<]+)</RequestId>", body)
    assert m, body
    assert headers.get("x-amz-request-id") == m.group(1).decode()
    assert headers["content-type"].startswith("application/xml")


def test_anonymous_is_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"hidden")
    for url in [f"{server.endpoint}/", f"{server.endpoint}/{bucket}", f"{server.endpoint}/{bucket}/secret",
                f"{server.endpoint}/{bucket}/missing", f"{server.endpoint}/no-such-bucket-x/k"]:
        st, h, body = curl_i(url)
        assert st == 403, (url, st, body)
        _assert_error_doc(body, h, "AccessDenied")
        assert b"hidden" not in body
    st, h, body = curl_i("-X", "PUT", "--data-binary", "x", f"{server.endpoint}/{bucket}/anon")
    assert st == 403
    _assert_error_doc(body, h, "AccessDenied")
    st, h, body = curl_i("-X", "DELETE", f"{server.endpoint}/{bucket}/secret")
    assert st == 403
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"hidden"
    with pytest.raises(Exception):
        s3.head_object(Bucket=bucket, Key="anon")


def test_request_id_on_every_response(server, s3, bucket, sig):
    s3.put_object(Bucket=bucket, Key="rid", Body=b"r")
    ids = set()
    checks = [
        (sig + [f"{server.endpoint}/"], 200),
        (sig + [f"{server.endpoint}/{bucket}/rid"], 200),
        (sig + ["-I", f"{server.endpoint}/{bucket}/rid"], 200),
        (sig + ["-I", f"{server.endpoint}/{bucket}"], 200),
        (sig + ["-I", f"{server.endpoint}/{bucket}/missing"], 404),
        (sig + [f"{server.endpoint}/{bucket}/missing"], 404),
        (sig + [f"{server.endpoint}/nonexistent-bkt-zz"], 404),
        ([f"{server.endpoint}/{bucket}"], 403),
        (sig + ["-H", "Range: bytes=100-200", f"{server.endpoint}/{bucket}/rid"], 416),
    ]
    for args, want in checks:
        st, h, body = curl_i(*args)
        assert st == want, (args, st, body)
        rid = h.get("x-amz-request-id")
        assert rid, (args, h)
        ids.add(rid)
        if st >= 400 and "-I" not in args:
            _assert_error_doc(body, h, s3raw.xml_code(body))
            assert b"<Resource>" in body
    assert len(ids) == len(checks), "request ids must be unique"


def test_health_live_without_auth(server):
    st, h, body = curl_i(f"{server.endpoint}/health/live")
    assert st == 200


def test_malformed_xml(server, s3, bucket, signer):
    def send(method, path, query, body, extra=None):
        headers = {"host": server.host_port, "content-length": str(len(body)), "connection": "close",
                   "content-md5": s3raw.md5_b64(body)}
        headers.update(extra or {})
        headers, *_ = signer.sign(method, path, query, headers, hashlib.sha256(body).hexdigest())
        return s3raw.send(server.port, s3raw.request_bytes(method, path, query, headers, body))

    for body in [b"<CreateBucketConfiguration><LocationConstraint>", b"not xml at all", b"<a></b>"]:
        st, h, resp = send("PUT", "/mal-formed-bucket-1", None, body)
        assert st == 400 and s3raw.xml_code(resp) == "MalformedXML", (body, st, resp)
    with pytest.raises(Exception):
        s3.head_bucket(Bucket="mal-formed-bucket-1")
    # a well-formed LocationConstraint body for the server's region is accepted ("with a body")
    ok = (b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
          b"<LocationConstraint></LocationConstraint></CreateBucketConfiguration>")
    st, h, resp = send("PUT", "/with-body-bucket-1", None, ok)
    assert st == 200, resp
    s3.head_bucket(Bucket="with-body-bucket-1")
    s3.delete_bucket(Bucket="with-body-bucket-1")

    s3.put_object(Bucket=bucket, Key="stay", Body=b"1")
    for body in [b"<Delete><Object><Key>stay</Key></Object>", b"garbage", b"<Delete></Nope>"]:
        st, h, resp = send("POST", f"/{bucket}", {"delete": ""}, body)
        assert st == 400 and s3raw.xml_code(resp) == "MalformedXML", (body, st, resp)
    assert s3.get_object(Bucket=bucket, Key="stay")["Body"].read() == b"1"
    # a tagging document that is not XML
    st, h, resp = send("PUT", f"/{bucket}/stay", {"tagging": ""}, b"<Tagging><TagSet>")
    assert st == 400 and s3raw.xml_code(resp) == "MalformedXML", resp
    # complete-multipart with garbage
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mx")["UploadId"]
    st, h, resp = send("POST", f"/{bucket}/mx", {"uploadId": uid}, b"<CompleteMultipartUpload><Part>")
    assert st == 400 and s3raw.xml_code(resp) == "MalformedXML", resp


@pytest.mark.parametrize("cl", ["-5", "abc", "1e3", "18446744073709551616", "5, 6", "0x10"])
def test_bad_content_length(server, bucket, cl):
    req = (f"PUT /{bucket}/badlen HTTP/1.1\r\nHost: {server.host_port}\r\nContent-Length: {cl}\r\n"
           "Connection: close\r\n\r\nhello").encode()
    resp = raw_http(server, req)
    assert resp, "no response at all"
    assert parse_status(resp) == 400, resp[:300]
    # the server is still alive and serving
    resp = raw_http(server, f"GET /health/live HTTP/1.1\r\nHost: {server.host_port}\r\nConnection: close\r\n\r\n".encode())
    assert parse_status(resp) == 200


def _start_signed_put(server, signer, path, total_len, extra=None, payload_hash="UNSIGNED-PAYLOAD"):
    headers = {"host": server.host_port, "content-length": str(total_len)}
    headers.update(extra or {})
    headers, seed, amz_date, scope = signer.sign("PUT", path, None, headers, payload_hash)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    s.sendall(s3raw.request_bytes("PUT", path, None, headers))
    return s, seed, amz_date, scope


def test_disconnect_mid_upload_leaves_nothing(server, s3, bucket, signer):
    assert server.tmp_dir.is_dir(), "the server stages uploads in DATA_DIR/tmp"
    staged_seen = False
    for i in range(3):
        key = f"abandoned-{i}"
        s, *_ = _start_signed_put(server, signer, f"/{bucket}/{key}", MiB)
        s.sendall(os.urandom(100 * 1024))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not staged_seen:
            staged_seen = bool(server.tmp_entries())
            time.sleep(0.05)
        s.close()
    # proves this test looks at the place where partial uploads live
    assert staged_seen, "no staging file appeared in tmp/ while 100 KiB of a 1 MiB upload were in"
    time.sleep(0.5)
    for i in range(3):
        with pytest.raises(Exception) as ei:
            s3.head_object(Bucket=bucket, Key=f"abandoned-{i}")
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    left = server.wait_tmp_empty(timeout=10)
    assert left == [], f"temporary files left after aborted uploads: {left}"
    # an existing object is not damaged by an aborted overwrite
    s3.put_object(Bucket=bucket, Key="keepme", Body=b"original")
    s, *_ = _start_signed_put(server, signer, f"/{bucket}/keepme", MiB)
    s.sendall(b"x" * 50_000)
    s.close()
    time.sleep(0.5)
    assert s3.get_object(Bucket=bucket, Key="keepme")["Body"].read() == b"original"
    assert server.wait_tmp_empty(timeout=10) == []


def test_streaming_signed_chunks(server, s3, bucket, signer):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD (aws-chunked with chunk signatures), as the Java/Rust/Go SDKs send."""
    data = os.urandom(200_000)
    path = f"/{bucket}/chunked"

    def put(body_fn, total):
        headers = {"host": server.host_port, "content-encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(data)), "content-length": str(total),
                   "connection": "close"}
        headers, seed, amz_date, scope = signer.sign("PUT", path, None, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        body = body_fn(seed, amz_date, scope)
        assert len(body) == total
        return s3raw.send(server.port, s3raw.request_bytes("PUT", path, None, headers, body))

    total = s3raw.signed_chunked_length(len(data))
    st, h, resp = put(lambda seed, d, sc: s3raw.signed_chunked_body(signer, seed, d, sc, data), total)
    assert st == 200, resp
    assert h["etag"] == '"%s"' % hashlib.md5(data).hexdigest()
    g = s3.get_object(Bucket=bucket, Key="chunked")
    assert g["Body"].read() == data
    assert "aws-chunked" not in g.get("ContentEncoding", "")
    # a tampered chunk is rejected and the old object stays
    st, h, resp = put(lambda seed, d, sc: s3raw.signed_chunked_body(signer, seed, d, sc, data[::-1], tamper_chunk=1),
                      total)
    assert st == 403 and s3raw.xml_code(resp) == "SignatureDoesNotMatch", (st, resp)
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == data
    assert server.wait_tmp_empty() == []


def test_signed_chunks_with_signed_trailer(server, s3, bucket, signer):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: chunk signatures plus a signed checksum trailer."""
    data = os.urandom(140_000)
    path = f"/{bucket}/signed-trailer"

    def put(body_data, checksum, tamper=False):
        headers = {"host": server.host_port, "content-encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(body_data)), "x-amz-trailer": "x-amz-checksum-crc32",
                   "connection": "close"}
        # the body length does not depend on signature values: size it with a dummy signer pass
        probe = s3raw.signed_trailer_body(signer, "0" * 64, "20000101T000000Z", "x/y/s3/aws4_request", body_data,
                                          "x-amz-checksum-crc32", checksum)
        headers["content-length"] = str(len(probe))
        headers, seed, amz_date, scope = signer.sign("PUT", path, None, headers,
                                                     "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        body = s3raw.signed_trailer_body(signer, seed, amz_date, scope, body_data, "x-amz-checksum-crc32", checksum,
                                         tamper_trailer_sig=tamper)
        assert len(body) == len(probe)
        return s3raw.send(server.port, s3raw.request_bytes("PUT", path, None, headers, body))

    st, h, resp = put(data, s3raw.crc32_b64(data))
    assert st == 200, resp
    g = s3.get_object(Bucket=bucket, Key="signed-trailer", ChecksumMode="ENABLED")
    assert g["Body"].read() == data and g["ChecksumCRC32"] == s3raw.crc32_b64(data)
    other = data[::-1]
    st, h, resp = put(other, s3raw.crc32_b64(other), tamper=True)
    assert st == 403 and s3raw.xml_code(resp) == "SignatureDoesNotMatch", (st, resp)
    st, h, resp = put(other, s3raw.crc32_b64(b"not the body"))
    assert st == 400 and s3raw.xml_code(resp) == "BadDigest", (st, resp)
    assert s3.get_object(Bucket=bucket, Key="signed-trailer")["Body"].read() == data
    assert server.wait_tmp_empty() == []


def test_unsigned_trailer_checksum(server, s3, bucket, signer):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER with x-amz-checksum-crc32 in the trailer (boto3 over HTTPS)."""
    data = os.urandom(150_000)
    path = f"/{bucket}/trailer"

    def put(trailer_value, body_data=data, truncate=False):
        body = s3raw.unsigned_trailer_body(body_data, "x-amz-checksum-crc32", trailer_value)
        if truncate:
            body = body[: len(body) // 2]
        headers = {"host": server.host_port, "content-encoding": "aws-chunked",
                   "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32",
                   "x-amz-sdk-checksum-algorithm": "CRC32", "content-length": str(len(body)),
                   "connection": "close"}
        headers, *_ = signer.sign("PUT", path, None, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
        raw = s3raw.request_bytes("PUT", path, None, headers, body)
        if truncate:
            # announce the full length but send only half, then close the write side
            full = s3raw.unsigned_trailer_body(body_data, "x-amz-checksum-crc32", trailer_value)
            raw = raw.replace(f"content-length: {len(body)}".encode(), f"content-length: {len(full)}".encode())
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
            out = b""
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                while True:
                    c = sock.recv(65536)
                    if not c:
                        break
                    out += c
            except (socket.timeout, OSError):
                pass  # the server may answer and close before we are done: fine
            finally:
                sock.close()
            return out
        return s3raw.send(server.port, raw)

    st, h, resp = put(s3raw.crc32_b64(data))
    assert st == 200, resp
    assert h.get("x-amz-checksum-crc32") == s3raw.crc32_b64(data)
    g = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert g["Body"].read() == data and g["ChecksumCRC32"] == s3raw.crc32_b64(data)
    # wrong trailing checksum: BadDigest, nothing changes
    st, h, resp = put(s3raw.crc32_b64(b"something else"), body_data=data[::-1])
    assert st == 400 and s3raw.xml_code(resp) == "BadDigest", (st, resp)
    assert s3.get_object(Bucket=bucket, Key="trailer")["Body"].read() == data
    # truncated chunked body: error or closed connection, never an object
    out = put(s3raw.crc32_b64(data[::-1]), body_data=data[::-1], truncate=True)
    if out:
        assert parse_status(out) >= 400
    assert s3.get_object(Bucket=bucket, Key="trailer")["Body"].read() == data
    assert server.wait_tmp_empty() == []


def test_raw_clock_skew_and_anonymous_presign_errors(server, bucket, signer):
    skewed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=16)
    headers = {"host": server.host_port, "connection": "close"}
    headers, *_ = signer.sign("GET", f"/{bucket}", None, headers, s3raw.EMPTY_SHA256, now=skewed)
    st, h, body = s3raw.send(server.port, s3raw.request_bytes("GET", f"/{bucket}", None, headers))
    assert st == 403 and s3raw.xml_code(body) == "RequestTimeTooSkewed", body
    # garbage Authorization header
    st, h, body = s3raw.send(server.port, s3raw.request_bytes("GET", f"/{bucket}", None, {
        "host": server.host_port, "authorization": "AWS4-HMAC-SHA256 garbage", "connection": "close"}))
    assert st in (400, 403), body
    assert s3raw.xml_code(body) in ("AuthorizationHeaderMalformed", "AccessDenied", "InvalidArgument",
                                    "SignatureDoesNotMatch", "InvalidRequest")
