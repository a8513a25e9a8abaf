"""Migration 0008: events recorded before it get their structured fields from their payloads."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("training", "0007_dataset_blobs")]
AFTER = [("training", "0008_job_event_structured_fields")]


@pytest.mark.django_db(transaction=True)
def test_existing_events_get_their_fields_from_their_payloads():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User = old.get_model("auth", "User")
    BaseModel = old.get_model("training", "BaseModel")
    TrainingFile = old.get_model("training", "TrainingFile")
    TrainingJob = old.get_model("training", "TrainingJob")
    JobEvent = old.get_model("training", "JobEvent")
    user = User.objects.create(username="before")
    model = BaseModel.objects.create(slug="before-0008", name="m", model_id="m/m", parameter_count=1,
                                     recommended_gpu="cpu")
    training_file = TrainingFile.objects.create(name="d", file="datasets/d.jsonl", sha256="0" * 64, created_by=user)
    job = TrainingJob.objects.create(name="j", training_file=training_file, base_model=model, configuration={})
    rows = {
        "status": JobEvent.objects.create(job=job, event_type="status_changed", processed=True,
                                          payload={"from": "training", "to": "failed", "message": "oom"}),
        "anomaly": JobEvent.objects.create(job=job, event_type="anomaly", processed=True,
                                           payload={"kind": "spike", "step": 17, "message": "a spike"}),
        "milestone": JobEvent.objects.create(job=job, event_type="milestone", processed=True,
                                             payload={"kind": "milestone", "step": 50, "percent": 25}),
        "odd": JobEvent.objects.create(job=job, event_type="anomaly", processed=True,
                                       payload={"kind": "stall", "step": "not a step"}),
        "heartbeat": JobEvent.objects.create(job=job, event_type="heartbeat", processed=True, payload={}),
    }

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("training", "JobEvent")
    got = {name: new.objects.get(pk=row.pk) for name, row in rows.items()}
    assert (got["status"].old_status, got["status"].new_status) == ("training", "failed")
    assert (got["anomaly"].anomaly_kind, got["anomaly"].step) == ("spike", 17)
    assert (got["milestone"].milestone_percent, got["milestone"].step) == (25, 50)
    assert (got["odd"].anomaly_kind, got["odd"].step) == ("stall", None)
    assert (got["heartbeat"].anomaly_kind, got["heartbeat"].old_status, got["heartbeat"].step) == ("", "", None)

    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
