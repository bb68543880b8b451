"""HTTPS: Tarn with [tls] cert/key, driven by aws-cli (--ca-bundle) and boto3 (verify=)."""

import os
import re
import select
import subprocess
import time
import urllib.request
import ssl

import boto3
import botocore.config
import pytest

from conftest import TARN_BIN, AwsCli, new_credentials, _require_tool

HTTPS_RE = re.compile(rb"tarn listening on https://127\.0\.0\.1:(\d+)")


class TlsServer:
    """Just enough of conftest.TarnServer for AwsCli: an endpoint and keys."""

    def __init__(self, endpoint, access_key, secret_key):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tarn-tls")
    openssl = _require_tool("openssl")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    config = root / "tarn.toml"
    config.write_text(f'[tls]\ncert = "{cert}"\nkey = "{key}"\n[zones]\ndefault_zone = "transformed"\n')
    access, secret = new_credentials()
    env = dict(os.environ, TARN_ROOT_ACCESS_KEY=access, TARN_ROOT_SECRET_KEY=secret)
    log = open(root / "tarn.log", "wb")
    proc = subprocess.Popen(
        [TARN_BIN, "serve", "--config", str(config), "--listen", "127.0.0.1:0",
         "--data-dir", str(root / "data")],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env,
    )
    buf, port, deadline = b"", None, time.monotonic() + 30
    while port is None and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            m = HTTPS_RE.search(buf)
            if m:
                port = int(m.group(1))
    assert port is not None, f"tarn did not start with TLS: {buf!r}\n{(root / 'tarn.log').read_text()}"
    yield {"endpoint": f"https://localhost:{port}", "cert": cert, "access": access, "secret": secret}
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def test_aws_cli_with_ca_bundle(tls_server, tmp_path):
    srv = TlsServer(tls_server["endpoint"], tls_server["access"], tls_server["secret"])
    aws = AwsCli(srv, tmp_path / "home")
    ca = str(tls_server["cert"])
    src = tmp_path / "hello.txt"
    src.write_bytes(b"over tls\n")
    aws.run("--ca-bundle", ca, "s3", "mb", "s3://tls-cli")
    aws.run("--ca-bundle", ca, "s3", "cp", str(src), "s3://tls-cli/hello.txt")
    listing = aws.run("--ca-bundle", ca, "s3", "ls", "s3://tls-cli/").stdout
    assert "hello.txt" in listing
    back = tmp_path / "back.txt"
    aws.run("--ca-bundle", ca, "s3", "cp", "s3://tls-cli/hello.txt", str(back))
    assert back.read_bytes() == b"over tls\n"
    # Without the CA the server's certificate is not trusted.
    r = aws.run("s3", "ls", check=False)
    assert r.returncode != 0 and "SSL" in (r.stderr + r.stdout).upper()


def test_boto3_with_verify_and_https_presigned_links(tls_server):
    s3 = boto3.client(
        "s3",
        endpoint_url=tls_server["endpoint"],
        aws_access_key_id=tls_server["access"],
        aws_secret_access_key=tls_server["secret"],
        region_name="us-east-1",
        verify=str(tls_server["cert"]),
        config=botocore.config.Config(signature_version="s3v4", retries={"max_attempts": 1}),
    )
    s3.create_bucket(Bucket="tls-boto")
    s3.put_object(Bucket="tls-boto", Key="k", Body=b"secret sauce")
    assert s3.get_object(Bucket="tls-boto", Key="k")["Body"].read() == b"secret sauce"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "tls-boto", "Key": "k"}, ExpiresIn=300)
    assert url.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(tls_server["cert"]))
    with urllib.request.urlopen(url, context=ctx, timeout=30) as resp:
        assert resp.read() == b"secret sauce"
