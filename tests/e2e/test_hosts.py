"""Several hosts: workers with working directories of their own store artifacts in an
S3-compatible bucket (moto's server, started here on loopback) that the API serves."""

from __future__ import annotations

import tempfile
from pathlib import Path

import boto3
import pytest

from tests.services import free_port, running_service, throwaway_postgres, throwaway_redis

pytestmark = pytest.mark.e2e


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch):
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="trainlab")
    try:
        yield endpoint
    finally:
        server.stop()


def test_workers_on_separate_hosts_share_artifacts_through_s3(s3_endpoint) -> None:
    with throwaway_postgres() as pg, throwaway_redis() as redis_url:
        env = {
            "TRAINLAB_DATABASE_URL": pg,
            "TRAINLAB_BROKER_URL": redis_url,
            "TRAINLAB_ARTIFACT_STORE": "s3://trainlab/lab",
            "TRAINLAB_S3_ENDPOINT_URL": s3_endpoint,
            "TRAINLAB_TORCH_THREADS": "1",
        }
        hosts = [Path(tempfile.mkdtemp(prefix=f"trainlab-host{i}-")) for i in range(2)]
        with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-api-")), workers=0) as service:
            for i, host in enumerate(hosts):
                service.start_worker(f"host{i}", data_dir=host)
            spec = {
                "name": "kfold-hosts",
                "data": {"source": "builtin/iris", "split": {"folds": 4}},
                "train": {"epochs": 10},
            }
            created = service.http.post("/api/v1/experiments", json=spec).json()
            parent = service.wait_for(created["id"], ("succeeded", "failed"), timeout=180)
            assert parent["status"] == "succeeded", parent["error"]
            children = [service.http.get(f"/api/v1/experiments/{c['id']}").json() for c in parent["children"]]
            assert len({c["worker"].split("@")[0] for c in children}) == 2  # both hosts worked
            for child in children:
                csv = service.http.get(f"/api/v1/experiments/{child['id']}/artifacts/predictions.csv")
                assert csv.status_code == 200 and csv.text.startswith("row,true")
            keys = {
                o["Key"]
                for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="trainlab", Prefix="lab/")[
                    "Contents"
                ]
            }
            # under the prefix, the database's id, then the experiment: lab/<uid>/experiments/<id>/...
            assert any(k.endswith(f"/experiments/{children[0]['id']}/model.pt") for k in keys), keys
            for host in hosts:  # nothing was written to the hosts' own disks
                assert not list(host.rglob("predictions.csv"))
