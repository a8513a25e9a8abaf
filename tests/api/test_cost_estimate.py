"""GET cost-estimate: what a configuration would cost before a job exists."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def estimate(api, **params):
    return api.get("/api/training/cost-estimate", params)


def test_it_estimates_the_default_configuration(owner, owner_api, make_file):
    response = estimate(owner_api, training_file=str(make_file(owner).pk))

    assert response.status_code == 200, response.data
    assert set(response.data["cost"]) == {"low", "expected", "high"}
    assert set(response.data["stages"]) >= {"startup", "preprocessing", "model_loading", "training", "validation"}
    assert response.data["configuration"]["hyperparameters"]["lora_r"] == 16  # balanced


def test_it_uses_preset_gpu_tier_and_overrides(owner, owner_api, make_file):
    response = estimate(
        owner_api, training_file=str(make_file(owner).pk), base_model="llama-3-70b-instruct",
        preset="aggressive", gpu_type="H100_PCIE_80GB", pricing_tier="on_demand",
        overrides=json.dumps({"num_epochs": 1}),
    )

    assert response.status_code == 200, response.data
    configuration = response.data["configuration"]
    assert configuration["gpu_type"] == "H100_PCIE_80GB" and configuration["gpu_pricing_tier"] == "on_demand"
    assert configuration["hyperparameters"]["num_epochs"] == 1 and configuration["hyperparameters"]["lora_r"] == 32


def test_more_epochs_cost_more(owner, owner_api, make_file):
    dataset = str(make_file(owner).pk)
    common = {"training_file": dataset, "base_model": "llama-3-70b-instruct", "gpu_type": "H100_PCIE_80GB"}

    one = estimate(owner_api, **common, overrides=json.dumps({"num_epochs": 1})).data
    four = estimate(owner_api, **common, overrides=json.dumps({"num_epochs": 4})).data

    assert float(four["cost"]["expected"]) > float(one["cost"]["expected"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"overrides": "{not json"}, "overrides"),
        ({"overrides": "[1, 2]"}, "overrides"),
        ({"overrides": json.dumps({"temperature": 1})}, "overrides"),
        ({"gpu_type": "TPU_V9"}, "gpu_type"),
        ({"pricing_tier": "free"}, "pricing_tier"),
        ({"preset": "turbo"}, "preset"),
    ],
)
def test_it_names_the_parameter_at_fault(owner, owner_api, make_file, params, field):
    response = estimate(owner_api, training_file=str(make_file(owner).pk), **params)

    assert response.status_code == 400
    assert field in response.data


def test_it_requires_a_valid_dataset(owner, owner_api, make_file):
    assert "training_file" in estimate(owner_api).data
    invalid = make_file(owner, validation_status="invalid")
    assert estimate(owner_api, training_file=str(invalid.pk)).status_code == 400
