"""A small, independent SigV4 signer and raw-socket HTTP helpers.

Used where the real clients cannot produce the request we need: aws-chunked bodies with
chunk signatures or trailers over plain HTTP, truncated bodies, mid-upload disconnects.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import socket
import urllib.parse
import zlib

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _uri_encode(s: str, keep_slash: bool) -> str:
    safe = "-_.~" + ("/" if keep_slash else "")
    return urllib.parse.quote(s, safe=safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Signer:
    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "s3"):
        self.ak = access_key
        self.sk = secret_key
        self.region = region
        self.service = service

    def signing_key(self, date: str) -> bytes:
        k = _hmac(("AWS4" + self.sk).encode(), date)
        k = _hmac(k, self.region)
        k = _hmac(k, self.service)
        return _hmac(k, "aws4_request")

    def sign(self, method: str, path: str, query: dict | None, headers: dict, payload_hash: str,
             now: dt.datetime | None = None) -> tuple[dict, str, str, str]:
        """Returns (headers with Authorization, seed signature, amz date, scope).

        `path` is the *decoded* path (e.g. "/bucket/my key"); it is encoded here.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        headers = dict(headers)
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        canon_headers = {k.lower().strip(): " ".join(str(v).split()) for k, v in headers.items()}
        signed = sorted(canon_headers)
        query = query or {}
        cq = "&".join(
            f"{_uri_encode(k, False)}={_uri_encode(v, False)}" for k, v in sorted(query.items())
        )
        creq = "\n".join([
            method,
            _uri_encode(path, True),
            cq,
            "".join(f"{h}:{canon_headers[h]}\n" for h in signed),
            ";".join(signed),
            payload_hash,
        ])
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
        sig = hmac.new(self.signing_key(date), sts.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.ak}/{scope}, SignedHeaders={';'.join(signed)}, Signature={sig}"
        )
        return headers, sig, amz_date, scope

    def chunk_signature(self, prev_sig: str, amz_date: str, scope: str, data: bytes) -> str:
        sts = "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev_sig, EMPTY_SHA256,
            hashlib.sha256(data).hexdigest(),
        ])
        return hmac.new(self.signing_key(amz_date[:8]), sts.encode(), hashlib.sha256).hexdigest()


def request_bytes(method: str, path: str, query: dict | None, headers: dict, body: bytes = b"") -> bytes:
    target = _uri_encode(path, True)
    if query:
        target += "?" + "&".join(
            f"{_uri_encode(k, False)}={_uri_encode(v, False)}" if v != "" else _uri_encode(k, False)
            for k, v in query.items()
        )
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send(port: int, data: bytes, timeout: float = 15.0) -> tuple[int, dict, bytes]:
    """Send one request (with Connection: close in headers) and parse the response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if _complete(out):
                break
    finally:
        s.close()
    return parse_response(out)


def _complete(out: bytes) -> bool:
    if b"\r\n\r\n" not in out:
        return False
    head, body = out.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(body) >= int(m.group(1))
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        return body.endswith(b"0\r\n\r\n")
    return False


def parse_response(out: bytes) -> tuple[int, dict, bytes]:
    assert out, "server closed the connection without any response"
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    assert m, f"not an HTTP response: {out[:200]!r}"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return int(m.group(1)), headers, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def signed_chunked_body(signer: Signer, seed_sig: str, amz_date: str, scope: str, data: bytes,
                        chunk_size: int = 64 * 1024, tamper_chunk: int | None = None) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD body."""
    out = []
    prev = seed_sig
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for idx, c in enumerate(chunks):
        sig = signer.chunk_signature(prev, amz_date, scope, c)
        prev = sig
        payload = c
        if tamper_chunk is not None and idx == tamper_chunk and c:
            payload = bytes([c[0] ^ 0xFF]) + c[1:]
        out.append(f"{len(c):x};chunk-signature={sig}\r\n".encode() + payload + b"\r\n")
    return b"".join(out)


def signed_chunked_length(data_len: int, chunk_size: int = 64 * 1024) -> int:
    n = 0
    sizes = [min(chunk_size, data_len - i) for i in range(0, data_len, chunk_size)] + [0]
    for s in sizes:
        n += len(f"{s:x};chunk-signature=".encode()) + 64 + 2 + s + 2
    return n


def signed_trailer_body(signer: Signer, seed_sig: str, amz_date: str, scope: str, data: bytes,
                        trailer_name: str, trailer_value: str, chunk_size: int = 64 * 1024,
                        tamper_trailer_sig: bool = False) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER body: signed chunks, then a signed trailer."""
    out = []
    prev = seed_sig
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for c in chunks:
        sig = signer.chunk_signature(prev, amz_date, scope, c)
        prev = sig
        out.append(f"{len(c):x};chunk-signature={sig}\r\n".encode() + c + (b"\r\n" if c else b""))
    canonical = f"{trailer_name}:{trailer_value}\n"
    sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    tsig = hmac.new(signer.signing_key(amz_date[:8]), sts.encode(), hashlib.sha256).hexdigest()
    if tamper_trailer_sig:
        tsig = ("0" if tsig[0] != "0" else "1") + tsig[1:]
    out.append(f"{trailer_name}:{trailer_value}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n".encode())
    return b"".join(out)


def unsigned_trailer_body(data: bytes, trailer_name: str, trailer_value: str, chunk_size: int = 64 * 1024) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER body, as botocore builds it."""
    out = []
    for i in range(0, len(data), chunk_size):
        c = data[i:i + chunk_size]
        out.append(f"{len(c):x}\r\n".encode() + c + b"\r\n")
    out.append(f"0\r\n{trailer_name}:{trailer_value}\r\n\r\n".encode())
    return b"".join(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _crc_table(poly: int, width: int):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _crc_table(0x9A6C9329AC4BC9B5, 64)


def crc32c_b64(data: bytes) -> str:
    c = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return base64.b64encode((c ^ 0xFFFFFFFF).to_bytes(4, "big")).decode()


def crc64nvme_b64(data: bytes) -> str:
    mask = 0xFFFFFFFFFFFFFFFF
    c = mask
    t = _CRC64NVME_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return base64.b64encode(((c ^ mask) & mask).to_bytes(8, "big")).decode()


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def xml_code(body: bytes) -> str | None:
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None
