"""The bucket is created on start-up if missing (issue 18, item 11): `manage.py ensure_bucket`,
run by docker-compose before the app starts, against moto's S3 server over HTTP."""

from __future__ import annotations

import uuid

import boto3
import pytest
from django.core.management import call_command

from core import storage
from tests.artifacts.conftest import s3_storages


def bucket_names(endpoint: str) -> set[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return {b["Name"] for b in client.list_buckets()["Buckets"]}


@pytest.fixture
def missing_bucket(moto_endpoint, settings) -> str:
    bucket = f"fresh-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = s3_storages(moto_endpoint, bucket)
    assert bucket not in bucket_names(moto_endpoint)
    return bucket


def test_ensure_bucket_creates_a_missing_bucket_then_leaves_it(moto_endpoint, missing_bucket, capsys):
    call_command("ensure_bucket")
    assert missing_bucket in bucket_names(moto_endpoint)
    assert f"created bucket {missing_bucket}" in capsys.readouterr().out

    storage.save_bytes("probe.txt", b"ok")  # usable at once
    call_command("ensure_bucket")  # every start runs it: the second time it changes nothing
    assert f"bucket {missing_bucket} exists" in capsys.readouterr().out
    assert storage.read_bytes("probe.txt") == b"ok"


def test_ensure_bucket_in_another_region_sets_its_location(moto_endpoint, missing_bucket, settings):
    settings.STORAGES["default"]["OPTIONS"]["region_name"] = "eu-west-1"
    assert storage.ensure_bucket() is True
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    assert client.get_bucket_location(Bucket=missing_bucket)["LocationConstraint"] == "eu-west-1"


def test_ensure_bucket_on_the_filesystem_makes_the_media_root(filesystem, settings):
    assert not settings.MEDIA_ROOT.exists()
    assert storage.ensure_bucket() is True
    assert settings.MEDIA_ROOT.is_dir()
    assert storage.ensure_bucket() is False
