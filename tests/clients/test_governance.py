"""Users, access keys, grants and the audit trail through real clients: curl
--aws-sigv4 and bearer tokens for the REST API, aws-cli and boto3 for S3 as members
with and without grants, `curl | jq` for the audit export, and `tarn admin`."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import TARN_BIN, AwsCli, make_boto3_client, unique_bucket


def curl(server, method, path, body=None, creds=None, bearer=None):
    """Calls /api/v1 with curl (SigV4 by default); returns (status, parsed body)."""
    args = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}"]
    if bearer is not None:
        args += ["-H", f"authorization: Bearer {bearer}"]
    else:
        ak, sk = creds or (server.access_key, server.secret_key)
        args += ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{ak}:{sk}"]
    if body is not None:
        args += ["-H", "content-type: application/json", "--data-binary", json.dumps(body)]
    args.append(f"{server.endpoint}/api/v1{path}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text, status = r.stdout.rsplit("\n", 1)
    return int(status), (json.loads(text) if text.strip() else None)


def new_user(server, name, role="member"):
    st, v = curl(server, "POST", "/users", {"name": name, "role": role})
    assert st == 201, v
    st, k = curl(server, "POST", f"/users/{name}/keys")
    assert st == 201, k
    return k["access_key_id"], k["secret_access_key"]


@pytest.fixture(scope="module")
def lake(server, s3):
    """A bucket with a dataset `sales/` and data outside it."""
    b = unique_bucket("gov")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="sales/2024.csv", Body=b"id,amount\n1,10\n")
    s3.put_object(Bucket=b, Key="hr/salaries.csv", Body=b"name,salary\nx,1\n")
    st, d = curl(server, "POST", "/datasets", {"name": "sales-" + b[-6:], "bucket": b, "prefix": "sales/"})
    assert st == 201, d
    return b, d["id"]


def test_member_reads_only_what_is_granted_boto3(server, lake):
    b, ds = lake
    ak, sk = new_user(server, "reader")
    c = make_boto3_client(server, ak, sk)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket=b, Key="sales/2024.csv")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    st, g = curl(server, "POST", "/grants", {"principal": "user:reader", "resource": f"dataset:{ds}",
                                            "permission": "read"})
    assert st == 201, g
    assert c.get_object(Bucket=b, Key="sales/2024.csv")["Body"].read().startswith(b"id,amount")
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=b, Prefix="sales/").get("Contents", [])]
    assert keys == ["sales/2024.csv"]
    for call in (lambda: c.get_object(Bucket=b, Key="hr/salaries.csv"),
                 lambda: c.list_objects_v2(Bucket=b),
                 lambda: c.put_object(Bucket=b, Key="sales/new.csv", Body=b"x")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    # The denied put changed nothing.
    with pytest.raises(ClientError):
        server.client().head_object(Bucket=b, Key="sales/new.csv")


def test_writer_with_aws_cli(server, lake, tmp_path):
    b, ds = lake
    ak, sk = new_user(server, "writer")
    st, _ = curl(server, "POST", "/grants", {"principal": "user:writer", "resource": f"dataset:{ds}",
                                            "permission": "write"})
    assert st == 201
    aws = AwsCli(server, tmp_path / "home", access_key=ak, secret_key=sk)
    src = tmp_path / "f.csv"
    src.write_bytes(b"id,amount\n2,20\n")
    aws.run("s3", "cp", str(src), f"s3://{b}/sales/2025.csv")
    out = aws.run("s3", "ls", f"s3://{b}/sales/").stdout
    assert "2025.csv" in out
    r = aws.run("s3", "cp", str(src), f"s3://{b}/hr/evil.csv", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    r = aws.run("s3", "cp", f"s3://{b}/hr/salaries.csv", str(tmp_path / "x"), check=False)
    assert r.returncode != 0


def test_disabled_and_deleted_keys(server):
    ak, sk = new_user(server, "temp")
    c = make_boto3_client(server, ak, sk)
    c.list_buckets()
    st, v = curl(server, "PATCH", f"/users/temp/keys/{ak}", {"enabled": False})
    assert st == 200 and v["enabled"] is False
    with pytest.raises(ClientError) as e:
        c.list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    st, _ = curl(server, "DELETE", f"/users/temp/keys/{ak}")
    assert st == 204
    st, v = curl(server, "GET", "/users/temp/keys")
    assert st == 200 and v["keys"] == []


def test_bearer_token_with_curl(server):
    ak, sk = new_user(server, "tok")
    st, t = curl(server, "POST", "/tokens", {"ttl_secs": 300}, creds=(ak, sk))
    assert st == 201, t
    st, z = curl(server, "GET", "/zones", bearer=t["token"])
    assert st == 200 and "zones" in z
    st, e = curl(server, "GET", "/users", bearer=t["token"])
    assert st == 403 and e["error"]["code"] == "AccessDenied"
    st, e = curl(server, "GET", "/zones", bearer="tarn_forged")
    assert st == 401 and e["error"]["code"] == "Unauthenticated"


def test_search_is_filtered(server, lake):
    ak, sk = new_user(server, "nosy")
    st, r = curl(server, "GET", "/search", creds=(ak, sk))
    assert st == 200 and r["total"] == 0 and r["facets"]["zone"] == {}
    st, r = curl(server, "GET", "/search")
    assert st == 200 and r["total"] >= 1


def test_bad_input_is_a_clear_json_error(server):
    st, e = curl(server, "POST", "/grants", {"principal": "user:ghost", "resource": "zone:raw",
                                            "permission": "read"})
    assert st == 404 and "ghost" in e["error"]["message"]
    st, e = curl(server, "POST", "/users", {"name": "bad name", "role": "member"})
    assert st == 400 and e["error"]["field"] == "name"


def test_audit_export_with_curl_and_jq(server, lake):
    b, _ = lake
    jq = shutil.which("jq")
    if jq is None:
        pytest.fail("jq is required for this test (apt-get install jq)")
    c = server.client()
    c.get_object(Bucket=b, Key="sales/2024.csv")
    anon = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                           f"{server.endpoint}/{b}/sales/2024.csv"], capture_output=True, text=True)
    assert anon.stdout == "403"
    cmd = (f"curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user {server.access_key}:{server.secret_key} "
           f"'{server.endpoint}/api/v1/audit/export?since=0' | {jq} -c 'select(.action == \"GetObject\")'")
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(x["outcome"] == "allowed" and x["principal"] == "root" for x in recs)
    assert any(x["outcome"] == "denied" and x["principal"] is None and x["status"] == 403 for x in recs)
    for x in recs:
        assert set(x) >= {"time", "request_id", "principal", "access_key_id", "action", "resource",
                          "outcome", "status", "bytes_in", "bytes_out", "source", "user_agent"}
    assert server.secret_key not in r.stdout


def test_readme_audit_query_with_curl(server, lake):
    """The README's audit query, as written: parameters out of order and a time with
    colons. curl before 8.x signs the query exactly as sent rather than in SigV4's
    canonical form (sorted, percent-encoded); such requests were refused."""
    b, _ = lake
    server.client().get_object(Bucket=b, Key="sales/2024.csv")
    st, page = curl(server, "GET", "/audit?outcome=allowed&principal=root"
                    "&since=2020-01-01T00:00:00Z&limit=100")
    assert st == 200, page
    assert page["records"], page
    assert all(r["outcome"] == "allowed" and r["principal"] == "root" for r in page["records"])


def test_admin_cli_lists_users(server):
    r = subprocess.run([TARN_BIN, "admin", "--data-dir", str(server.data_dir), "user", "list"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    names = [u["name"] for u in json.loads(r.stdout)]
    assert "root" in names and "reader" in names
