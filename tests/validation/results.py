"""Worker validation results as gpu_worker reports them, for the control plane's tests."""

from __future__ import annotations

import json

from training.events import record_event
from training.models import JobEvent
from training.services.worker_config import build_worker_config
from validation import sets
from validation.models import JobValidation

GOOD = ("That sounds frightening, and it makes sense you feel stuck.\n\n"
        "At 24% APR, $6,000 costs about $120 a month. You can call 988 any time, day or night.\n\n"
        "Can you list each card's balance and rate tonight?")
FLAT = "Investing is guaranteed to double your money, you can't lose, and the rate is what it is for everyone always"


def suite_of(job) -> dict:
    path = build_worker_config(job)["validation_suite"]
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def worker_results(suite: dict, *, forgotten: int = 0, error: str | None = None) -> dict:
    """A validation_results payload shaped as gpu_worker reports it (docs/worker-contract.md):
    the trained model finds each reference reply likelier and writes the replies in the voice;
    it gets every question right that base does, less `forgotten` of them."""
    def generated(kind: str, reference: bool) -> dict:
        items = []
        for item in suite[kind]["items"]:
            base = {"reply": FLAT, "new_tokens": 40, "hit_cap": True}
            trained = {"reply": GOOD, "new_tokens": 60, "hit_cap": False}
            if reference:
                base.update(reference_nll=200.0, reference_tokens=100)
                trained.update(reference_nll=120.0, reference_tokens=100)
            items.append({"id": item["id"], "base": base, "trained": trained})
        return {"status": "ok", "seconds": 1.0, "set": {k: suite[kind][k] for k in ("name", "version", "sha256")},
                "items": items}

    questions = []
    for index, item in enumerate(suite[sets.KNOWLEDGE_RETENTION]["items"]):
        key = sets.LETTERS.index(item["answer"])
        right = [-1.0 if i == key else -5.0 for i in range(4)]
        wrong = [-5.0 if i == key else -1.0 for i in range(4)]
        base_right = index % 4 != 0  # base gets three in four right
        trained = right if base_right and index >= forgotten * 4 // 3 + 1 else wrong if base_right else wrong
        questions.append({"id": item["id"], "answer": item["answer"],
                          "base": {"loglik": right if base_right else wrong, "chars": [10] * 4},
                          "trained": {"loglik": trained, "chars": [10] * 4}})
    results = {
        "perplexity": {"status": "ok", "base": 17.9, "trained": 11.2, "improvement_pct": 37.4, "samples": 3,
                       "tokens": 300, "per_sample": [[300.0, 280.0, 100], [290.0, 270.0, 100], [280.0, 260.0, 100]]},
        sets.EMOTIONAL_INTELLIGENCE: generated(sets.EMOTIONAL_INTELLIGENCE, reference=True),
        sets.KNOWLEDGE_RETENTION: {"status": "ok", "seconds": 1.0, "items": questions},
        sets.BRAND_VOICE: generated(sets.BRAND_VOICE, reference=False),
    }
    if error:
        results[error] = {"status": "error", "error_type": "OutOfMemoryError", "message": "CUDA out of memory"}
    return results


def report(job, results, django_capture_on_commit_callbacks) -> JobValidation:
    with django_capture_on_commit_callbacks(execute=True):
        record_event(job.pk, JobEvent.Type.VALIDATION_RESULTS, source="worker", attempt=1,
                     payload={"evaluators": results})
    return JobValidation.objects.get(job=job)
