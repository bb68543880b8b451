"""Zones and the dataset catalog through real clients: curl --aws-sigv4 for the REST
API, aws-cli and boto3 for the zone rules and the data the crawler reads, pyarrow
for Parquet fixtures."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import start_server, unique_bucket


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with the product defaults: S3-created buckets land in raw.

    conftest's server puts new buckets in transformed (plain S3 semantics for the
    S3 conformance tests); this module is about the zone rules, so it asks for raw.
    """
    root = tmp_path_factory.mktemp("tarn-catalog")
    product = {"TARN__ZONES__DEFAULT_ZONE": "raw", "TARN__ZONES__CREATE_ZONE_BUCKETS": "true"}
    saved = {k: os.environ.get(k) for k in product}
    os.environ.update(product)
    try:
        srv = start_server(root)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield srv
    if srv.proc is not None:
        alive = srv.proc.poll() is None
        rc = srv.stop()
        assert alive, f"tarn died during the module (rc={rc}); log tail:\n{srv.log_tail()}"


def curl_json(server, method, path, body=None, sign=True):
    """Calls /api/v1 with curl; returns (status, parsed JSON body). curl 7.x signs
    the query string as written; the server accepts that as well as SigV4's
    canonical form (test_governance.test_readme_audit_query_with_curl)."""
    args = ["curl", "-sS", "-X", method, "-w", "\n%{http_code}"]
    if sign:
        args += ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{server.access_key}:{server.secret_key}"]
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        args += ["-H", "content-type: application/json", "--data-binary", data]
    args.append(f"{server.endpoint}/api/v1{path}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text, status = r.stdout.rsplit("\n", 1)
    return int(status), (json.loads(text) if text.strip() else None)


def expect_error(got, status, code):
    st, body = got
    assert st == status, body
    assert body["error"]["code"] == code, body
    assert body["error"]["request_id"]
    return body


def test_rest_api_needs_a_signature(server):
    body = expect_error(curl_json(server, "GET", "/zones", sign=False), 401, "Unauthenticated")
    assert "aws-sigv4" in body["error"]["message"]
    st, zones = curl_json(server, "GET", "/zones")
    assert st == 200
    assert [z["zone"] for z in zones["zones"]] == ["raw", "transformed", "curated"]
    st, doc = curl_json(server, "GET", "/openapi.json")
    assert st == 200 and "/datasets/{id}/crawl" in doc["paths"]


def test_raw_zone_is_write_once_for_aws_cli_and_boto3(server, s3, aws, tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("id,v\n1,2\n")
    aws.run("s3", "cp", f, "s3://raw/cli/a.csv")
    again = aws.run("s3", "cp", f, "s3://raw/cli/a.csv", check=False)
    assert again.returncode != 0
    assert "AccessDenied" in again.stderr and "raw zone" in again.stderr
    rm = aws.run("s3", "rm", "s3://raw/cli/a.csv", check=False)
    assert rm.returncode != 0 and "AccessDenied" in rm.stderr

    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="raw", Key="cli/a.csv", Body=b"overwrite")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "raw zone" in e.value.response["Error"]["Message"]
    out = s3.delete_objects(Bucket="raw", Delete={"Objects": [{"Key": "cli/a.csv"}]})
    assert [x["Code"] for x in out.get("Errors", [])] == ["AccessDenied"]
    assert s3.get_object(Bucket="raw", Key="cli/a.csv")["Body"].read() == b"id,v\n1,2\n"

    # A new S3 bucket is raw too; the admin override header lifts the rule per request.
    b = unique_bucket("landing")
    s3.create_bucket(Bucket=b)
    st, info = curl_json(server, "GET", f"/buckets/{b}")
    assert st == 200 and info["zone"] == "raw"
    s3.put_object(Bucket=b, Key="k", Body=b"1")

    def add_override(request, **kwargs):
        request.headers["x-tarn-override-zone-rules"] = "true"

    admin = server.client()
    admin.meta.events.register("before-sign.s3.*", add_override)
    admin.put_object(Bucket=b, Key="k", Body=b"2")
    admin.delete_object(Bucket=b, Key="k")

    # After an admin moves the bucket to transformed, overwrites are ordinary.
    st, info = curl_json(server, "PUT", f"/buckets/{b}", {"zone": "transformed"})
    assert st == 200 and info["zone"] == "transformed"
    s3.put_object(Bucket=b, Key="k", Body=b"3")
    s3.put_object(Bucket=b, Key="k", Body=b"4")


def test_dataset_workflow_with_curl_and_live_stats(server, s3):
    st, ds = curl_json(server, "POST", "/datasets", {
        "name": "clicks", "bucket": "transformed", "prefix": "clicks/",
        "description": "Web clicks by session", "tags": {"domain": "web"},
        "metadata": {"steward": "growth team"}})
    assert st == 201, ds
    dsid = ds["id"]
    for i in range(3):
        s3.put_object(Bucket="transformed", Key=f"clicks/day={i}/part.jsonl",
                      Body=b'{"session":"s1","ms":12,"ok":true}\n' * (i + 1))
    s3.delete_object(Bucket="transformed", Key="clicks/day=0/part.jsonl")
    st, got = curl_json(server, "GET", f"/datasets/{dsid}")
    assert got["stats"]["object_count"] == 2
    line = len(b'{"session":"s1","ms":12,"ok":true}\n')
    assert got["stats"]["total_bytes"] == line * (2 + 3)

    st, crawl = curl_json(server, "POST", f"/datasets/{dsid}/crawl")
    assert st == 200, crawl
    assert crawl["schema"]["format"] == "jsonl"
    assert [(c["name"], c["type"]) for c in crawl["schema"]["columns"]] == [
        ("session", "string"), ("ms", "integer"), ("ok", "boolean")]
    assert crawl["schema"]["partitions"][0]["values"] == ["1", "2"]

    st, page = curl_json(server, "GET", "/datasets?tag=domain%3Dweb&zone=transformed")
    assert [d["name"] for d in page["datasets"]] == ["clicks"]
    st, res = curl_json(server, "GET", "/search?q=session")
    assert st == 200 and res["results"][0]["dataset"]["name"] == "clicks"
    assert res["facets"]["zone"] == {"transformed": 1}
    st, res = curl_json(server, "GET", "/search?format=jsonl&q=growth")
    assert res["total"] == 1

    st, upd = curl_json(server, "PATCH", f"/datasets/{dsid}", {"description": "Clicks"})
    assert st == 200 and upd["description"] == "Clicks"
    st, gone = curl_json(server, "DELETE", f"/datasets/{dsid}")
    assert st == 200 and gone["purged_objects"] == 0
    assert s3.get_object(Bucket="transformed", Key="clicks/day=1/part.jsonl")["ContentLength"] > 0


def test_error_classes_over_curl(server):
    expect_error(curl_json(server, "POST", "/datasets", '{"name": '), 400, "MalformedJson")
    body = expect_error(curl_json(server, "POST", "/datasets", {"name": 1, "bucket": "raw"}), 400, "InvalidField")
    assert body["error"]["field"] == "name"
    expect_error(curl_json(server, "GET", "/datasets/12345"), 404, "NotFound")
    st, _ = curl_json(server, "POST", "/datasets", {"name": "dup", "bucket": "raw", "prefix": "dup"})
    assert st == 201
    expect_error(curl_json(server, "POST", "/datasets", {"name": "dup", "bucket": "raw", "prefix": "dup2"}), 409, "Conflict")
    st, _ = curl_json(server, "PUT", "/governance", {"zones": {"curated": {"required_tags": ["owner", "classification"]}}})
    assert st == 200
    body = expect_error(curl_json(server, "POST", "/datasets", {"name": "gov", "bucket": "curated", "prefix": "gov",
                                                                 "tags": {"owner": "x"}}), 422, "GovernanceViolation")
    assert body["error"]["missing"] == ["classification"]
    st, _ = curl_json(server, "PUT", "/governance", {"zones": {}})
    assert st == 200


def test_parquet_schema_versions_from_pyarrow(server, s3):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def put_table(key, table):
        buf = io.BytesIO()
        pq.write_table(table, buf)
        s3.put_object(Bucket="curated", Key=key, Body=buf.getvalue())

    t1 = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "name": pa.array(["a", None], pa.string()),
        "ts": pa.array([0, 1], pa.timestamp("ms")),
        "day": pa.array([0, 1], pa.date32()),
        "price": pa.array([1.5, 2.5], pa.float64()),
        "tags": pa.array([["x"], []], pa.list_(pa.string())),
    })
    put_table("trips/year=2024/month=05/part-0.parquet", t1)
    st, ds = curl_json(server, "POST", "/datasets", {"name": "trips", "bucket": "curated", "prefix": "trips"})
    assert st == 201, ds
    st, c = curl_json(server, "POST", f"/datasets/{ds['id']}/crawl")
    assert st == 200, c
    assert c["version"] == 1 and c["schema"]["format"] == "parquet"
    assert [(x["name"], x["type"]) for x in c["schema"]["columns"]] == [
        ("id", "integer"), ("name", "string"), ("ts", "timestamp"), ("day", "date"),
        ("price", "float"), ("tags", "list")]
    assert [p["name"] for p in c["schema"]["partitions"]] == ["year", "month"]

    # A new partition whose files drop `ts` and turn `price` into a string.
    s3.delete_object(Bucket="curated", Key="trips/year=2024/month=05/part-0.parquet")
    t2 = pa.table({"id": pa.array([3], pa.int64()), "name": pa.array(["c"]), "day": pa.array([2], pa.date32()),
                   "price": pa.array(["n/a"]), "tags": pa.array([["y"]], pa.list_(pa.string()))})
    put_table("trips/year=2024/month=06/part-0.parquet", t2)
    st, c = curl_json(server, "POST", f"/datasets/{ds['id']}/crawl")
    assert c["version"] == 2 and c["changed"] is True, c
    assert [x["name"] for x in c["diff"]["removed"]] == ["ts"]
    assert c["diff"]["retyped"] == [{"name": "price", "from": "float", "to": "string"}]
    st, v1 = curl_json(server, "GET", f"/datasets/{ds['id']}/schema?version=1")
    assert st == 200 and [x["name"] for x in v1["schema"]["columns"]][2] == "ts"


def test_csv_crawl_after_aws_cli_upload(server, aws, tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("city\tpop\tfounded\nOslo\t700000\t1040-01-01\nBergen\t285000\t1070-01-01\n")
    aws.run("s3", "cp", f, "s3://transformed/cities/country=NO/data.csv")
    st, ds = curl_json(server, "POST", "/datasets", {"name": "cities", "bucket": "transformed", "prefix": "cities"})
    st, c = curl_json(server, "POST", f"/datasets/{ds['id']}/crawl")
    assert st == 200, c
    assert c["schema"]["delimiter"] == "\t"
    assert [(x["name"], x["type"]) for x in c["schema"]["columns"]] == [
        ("city", "string"), ("pop", "integer"), ("founded", "date")]
    assert c["schema"]["partitions"] == [{"name": "country", "type": "string", "values": ["NO"]}]
