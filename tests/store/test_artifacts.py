"""Artifact stores: local files, and S3 through moto's real HTTP server with real boto3."""

from __future__ import annotations

import boto3
import pytest

from store.artifacts import S3ArtifactStore
from store.errors import ArtifactError


def test_local_store_round_trip_and_errors(artifacts):
    key = artifacts.put_json("investigations/inv-1/evidence-r0.json", {"b": 1, "a": [1, 2]})
    assert artifacts.get_json(key) == {"a": [1, 2], "b": 1}
    assert artifacts.exists(key) and not artifacts.exists("investigations/inv-1/nope.json")
    assert artifacts.url(key).startswith("file://")
    with pytest.raises(ArtifactError, match="does not exist"):
        artifacts.get_bytes("investigations/inv-1/nope.json")
    with pytest.raises(ArtifactError, match="fix the key"):
        artifacts.put_bytes("../escape", b"x")


@pytest.fixture
def s3_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.integration
def test_s3_store_round_trip_through_real_http(s3_endpoint):
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="pm-artifacts")
    store = S3ArtifactStore("pm-artifacts", endpoint_url=s3_endpoint)
    key = store.put_json("investigations/inv-1/report.json", {"verdict": "LIKELY"})
    assert store.get_json(key) == {"verdict": "LIKELY"}
    assert store.exists(key) and not store.exists("investigations/inv-1/missing.json")
    with pytest.raises(ArtifactError, match="does not exist"):
        store.get_bytes("investigations/inv-1/missing.json")
    assert store.url(key).startswith(s3_endpoint + "/pm-artifacts/investigations/inv-1/report.json")
    missing_bucket = S3ArtifactStore("no-such-bucket", endpoint_url=s3_endpoint)
    with pytest.raises(ArtifactError, match="check S3_BUCKET"):
        missing_bucket.put_bytes("k", b"x")
