"""gpu_worker.contract is the one list of exit codes, stages and event types: the control plane
derives its own from it instead of restating them."""

from __future__ import annotations

from gpu_worker import callbacks, contract
from gpu_worker.contract import EventType, ExitCode, Stage
from training.services import ingest, reports
from training.states import WORKER_STAGES, Status


def test_exit_codes_keep_their_numbers():
    assert {code.name: int(code) for code in ExitCode} == {
        "SUCCESS": 0, "UNKNOWN_ERROR": 1, "USER_ERROR": 2, "INFRASTRUCTURE_ERROR": 3,
        "INTERRUPTED": 4, "STOPPED_BY_CONTROL_PLANE": 5,
    }


def test_the_job_states_of_the_worker_stages_are_the_contract_stages_in_order():
    assert contract.STAGES == ("preprocessing", "model_loading", "training", "finalizing", "validating")
    assert tuple(stage.value for stage in WORKER_STAGES) == contract.STAGES == tuple(Stage)
    assert all(isinstance(stage, Status) for stage in WORKER_STAGES)


def test_ingestion_accepts_exactly_the_contract_event_types():
    assert reports.EVENT_TYPES == contract.EVENT_TYPES == frozenset(EventType)
    assert set(ingest.APPLY) == contract.EVENT_TYPES
    assert set(contract.REQUIRED_STEP_FIELDS) | set(contract.OPTIONAL_STEP_FIELDS) <= contract.EVENT_TYPES


def test_the_worker_stops_on_the_contract_divergence_rule():
    assert (callbacks.DIVERGENCE_FACTOR, callbacks.DIVERGENCE_PATIENCE) == (
        contract.DIVERGENCE_STOP_FACTOR, contract.DIVERGENCE_STOP_PATIENCE) == (10.0, 3)
