"""Cart, checkout and manifests through real clients: curl --aws-sigv4 for the REST
API, plain curl (and `xargs curl`) for the presigned links, boto3 and aws-cli for the
manifest stored as an object."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import pytest

from conftest import AwsCli, make_boto3_client, unique_bucket


def curl(server, method, path, body=None, creds=None):
    """Calls /api/v1 with curl --aws-sigv4; returns (status, text)."""
    ak, sk = creds or (server.access_key, server.secret_key)
    args = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}",
            "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{ak}:{sk}"]
    if body is not None:
        args += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
    args.append(f"{server.endpoint}/api/v1{path}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text, status = r.stdout.rsplit("\n", 1)
    return int(status), text


def curl_json(server, method, path, body=None, creds=None):
    st, text = curl(server, method, path, body, creds)
    return st, (json.loads(text) if text.strip() else None)


def new_user(server, name):
    st, v = curl_json(server, "POST", "/users", {"name": name, "role": "member"})
    assert st == 201, v
    st, k = curl_json(server, "POST", f"/users/{name}/keys")
    assert st == 201, k
    return k["access_key_id"], k["secret_access_key"]


@pytest.fixture(scope="module")
def lake(server, s3):
    """A dataset `sales/` with objects (one with a SHA-256 checksum, one large), data
    outside it, a member `buyer` who may read the dataset and `stranger` who may not."""
    b = unique_bucket("cart")
    s3.create_bucket(Bucket=b)
    objects = {
        "sales/year=2023/a.csv": b"id,amount\n1,10\n",
        "sales/year=2024/b.csv": b"id,amount\n2,20\n" * 50,
        "sales/year=2024/big.bin": bytes(range(256)) * 4096,  # 1 MiB: a file, not inline
    }
    for k, v in objects.items():
        s3.put_object(Bucket=b, Key=k, Body=v, ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=b, Key="hr/salaries.csv", Body=b"secret\n")
    st, d = curl_json(server, "POST", "/datasets", {"name": "sales-" + b[-6:], "bucket": b, "prefix": "sales/"})
    assert st == 201, d
    buyer = new_user(server, "buyer")
    stranger = new_user(server, "stranger")
    st, g = curl_json(server, "POST", "/grants", {"principal": "user:buyer", "resource": f"dataset:{d['id']}",
                                                 "permission": "read"})
    assert st == 201, g
    return {"bucket": b, "dataset": d["id"], "objects": objects, "buyer": buyer, "stranger": stranger}


def test_stranger_cannot_put_unreadable_datasets_in_the_cart(server, lake):
    st, v = curl_json(server, "POST", "/cart", {"dataset": lake["dataset"]}, creds=lake["stranger"])
    assert st == 403, v
    assert v["error"]["code"] == "AccessDenied"
    st, v = curl_json(server, "POST", "/cart", {"dataset": 987654}, creds=lake["stranger"])
    assert st == 404, v


def test_checkout_download_every_link_with_curl(server, lake, tmp_path):
    buyer = lake["buyer"]
    st, item = curl_json(server, "POST", "/cart", {"dataset": lake["dataset"]}, creds=buyer)
    assert st == 201, item
    st, cart = curl_json(server, "GET", "/cart", creds=buyer)
    assert [i["dataset"] for i in cart["items"]] == [lake["dataset"]]
    st, m = curl_json(server, "POST", "/cart/checkout", {"format": "signed-url", "expires_in": 900}, creds=buyer)
    assert st == 201, m
    assert m["totals"] == {"objects": 3, "bytes": sum(len(v) for v in lake["objects"].values())}
    assert sorted(e["key"] for e in m["entries"]) == sorted(lake["objects"])
    for e in m["entries"]:
        out = tmp_path / "dl"
        r = subprocess.run(["curl", "-sS", "-f", "-o", str(out), e["url"]], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (e["key"], r.stderr)
        data = out.read_bytes()
        assert data == lake["objects"][e["key"]]
        assert hashlib.md5(data).hexdigest() == e["etag"]
        assert e["checksum"]["algorithm"].upper() == "SHA256", e
        assert base64.b64encode(hashlib.sha256(data).digest()).decode() == e["checksum"]["value"]

    # format=urls piped to xargs curl: every file arrives intact.
    dl = tmp_path / "xargs"
    dl.mkdir()
    ak, sk = buyer
    pipeline = (f"curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user {ak}:{sk} "
                f"'{server.endpoint}/api/v1/manifests/{m['id']}?format=urls' | xargs -n 1 curl -sS -f -O")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], cwd=dl, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dl.iterdir()}
    want = {k.rsplit("/", 1)[1]: hashlib.sha256(v).hexdigest() for k, v in lake["objects"].items()}
    assert got == want

    # A link is for its object only, and for GET only.
    url = m["entries"][0]["url"]
    path, query = url.split("?", 1)
    other = f"{server.endpoint}/{lake['bucket']}/hr/salaries.csv?{query}"
    for args in (["-X", "PUT", "--data-binary", "x", url], ["-X", "DELETE", url], [other]):
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout == "403", (args, r.stdout)

    # Revocation: after DELETE every link is refused.
    st, _ = curl(server, "DELETE", f"/manifests/{m['id']}", creds=buyer)
    assert st == 204
    for e in m["entries"]:
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", e["url"]],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout == "403", e["key"]


def test_stored_manifest_with_boto3_and_aws_cli(server, lake, tmp_path):
    buyer = lake["buyer"]
    st, item = curl_json(server, "POST", "/cart", {"dataset": lake["dataset"], "prefix": "year=2024/"}, creds=buyer)
    assert st == 201, item
    st, m = curl_json(server, "POST", "/cart/checkout", {}, creds=buyer)
    assert st == 201, m
    assert {e["key"] for e in m["entries"]} == {"sales/year=2024/b.csv", "sales/year=2024/big.bin"}
    bucket, key = m["object"].removeprefix("s3://").split("/", 1)
    assert key == f"buyer/{m['id']}.json"

    c = make_boto3_client(server, *buyer)
    stored = json.loads(c.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == m
    listed = [o["Key"] for o in c.list_objects_v2(Bucket=bucket, Prefix="buyer/").get("Contents", [])]
    assert key in listed
    # The links in the stored copy work too.
    for e in stored["entries"]:
        r = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", e["url"]], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    aws = AwsCli(server, tmp_path / "home", *buyer)
    aws.run("s3", "cp", f"s3://{bucket}/{key}", str(tmp_path / "m.json"))
    assert json.loads((tmp_path / "m.json").read_text()) == m

    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        make_boto3_client(server, *lake["stranger"]).get_object(Bucket=bucket, Key=key)
    assert e.value.response["Error"]["Code"] == "AccessDenied"
