"""A realistic validation report document, as the app hands it to `validation.report_pdf`: the
Elena Morales demo job after training, every section filled in."""

from __future__ import annotations

import math
import random
from typing import Any

TITLE = "Validation report — Elena Morales voice (demo)"
SET_SHA = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
ADAPTER_SHA = "4b1d8e2f0a9c7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
LONG_URL = ("https://storage.example.com/artifacts/jobs/8f14e45f-ceea-467f-a0e6-1f1b2c3d4e5f/"
            "validation/replies/trained/brand_voice/bv-017.json?X-Amz-Signature=0123456789abcdef")

FLAGGED_REPLY = (
    "Honestly, the market always comes back, so keep everything in the index fund and you will "
    "be fine by the time you retire."
)
BEST_LAST_SENTENCE = (
    "So here is one next step for this week: open your bank app, find the date your paycheck "
    "lands, and tell me which two bills fall in the ten days before it."
)
BEST_TRAINED_REPLY = (
    "That sounds exhausting, and it makes complete sense that you feel behind. Living paycheck to "
    "paycheck on $3,400 a month after rent is not a character flaw; it is arithmetic, and "
    "arithmetic can be changed.\n\n"
    "Here is why the timing matters so much. When most of your bills land before payday, every "
    "month starts with a small overdraft (a fee your bank charges when your balance goes below "
    "zero), and those $35 fees quietly eat into the next month too. Moving even two due dates "
    "can break that loop.\n\n"
    "What I would do first:\n"
    "1. List every bill with its due date and amount.\n"
    "2. Call the two largest creditors and ask to move the due date to the 3rd, after payday. "
    "Most card issuers and utilities will do this once a year at no cost.\n"
    "3. Keep $200 — about ½ of a week's groceries — as a buffer in checking, not savings, so "
    "an early debit never bounces.\n\n"
    "None of this needs more willpower. It needs the calendar to work for you instead of "
    "against you. " + BEST_LAST_SENTENCE
)
BEST_BASE_REPLY = (
    "Budgeting is important. You should create a budget and track your expenses. Consider using "
    "a budgeting app. Try to reduce unnecessary spending and build an emergency fund of three to "
    "six months of expenses.\n\nYou may also want to consult a financial advisor."
)
WORST_TRAINED_REPLY = (
    "I hear how frightening this is. A 401(k) loan can feel like the only door left, and I want "
    "to walk through what it really costs before you open it.\n\n"
    "Borrowing $12,000 from your 401(k) means those dollars stop growing while they are out, and "
    "if you leave your job the balance is usually due by the next tax filing date. Miss that and "
    "it counts as a withdrawal: income tax plus a 10% penalty.\n\n"
    "Before you decide, would you tell me whether your employer matches contributions, and how "
    "stable your job feels right now?"
)


def _loss(steps: int, start: float, end: float, *, every: int = 1, noise: float = 0.05) -> list[list[float]]:
    """A loss curve that falls like a real run's: fast at first, then flattening, with wobble."""
    wobble = random.Random(steps * every)  # seeded: the same curve every run
    points = []
    for step in range(every, steps + 1, every):
        t = step / steps
        value = end + (start - end) * math.exp(-4.0 * t) + noise * wobble.uniform(-1, 1) * (1 - t / 2)
        points.append([float(step), round(value, 4)])
    return points


def _headline(label: str, base: str, trained: str, change: str, threshold: str, passed: bool | None,
              scorer: str, provisional: bool = False) -> dict[str, Any]:
    verdict = {True: "Pass", False: "Fail", None: "Not measured"}[passed]
    return {"label": label, "base": base, "trained": trained, "change": change,
            "threshold": threshold, "verdict": verdict, "passed": passed, "scorer": scorer,
            "provisional": provisional}


CHARACTERISTICS = [
    ("Warmth", 3.1, 4.4), ("Directness", 2.9, 4.1), ("Teaches as she goes", 2.6, 4.3),
    ("Plain language", 3.4, 4.5), ("Concrete numbers", 2.2, 4.2), ("No judgement", 3.8, 4.6),
    ("Names the feeling first", 2.0, 4.0), ("Short paragraphs", 3.0, 4.4),
    ("Knows her limits", 3.5, 3.9), ("One clear next step", 2.4, 4.5),
]


def realistic_document() -> dict[str, Any]:
    """Every key of the schema, with the lengths and characters a real report has."""
    scores = []
    for i in range(1, 31):
        for model in ("base", "trained"):
            for name, base, trained in CHARACTERISTICS[:3]:
                scores.append({"benchmark": "Brand voice", "item_id": f"bv-{i:03d}", "model": model,
                               "criterion": name, "score": f"{(base if model == 'base' else trained):.0f}",
                               "scorer": "judge:gpt-4.1-mini"})
    return {
        "title": TITLE,
        "version": 2,
        "generated_at": "7 Dec 2026, 23:40 UTC",
        "job": {"id": "8f14e45f-ceea-467f-a0e6-1f1b2c3d4e5f", "name": "Elena Morales voice (demo)",
                "owner": "maria@example.com", "base_model": "SmolLM2 135M Instruct",
                "preset": "Balanced LoRA (r=16)", "dataset": "elena_morales_chat.jsonl (240 conversations)",
                "status": "Completed", "started": "7 Dec 2026, 22:51 UTC",
                "finished": "7 Dec 2026, 23:32 UTC"},
        "executive": {
            "verdict": "not_ready",
            "sentence": (
                "The trained model sounds much more like Elena than the base model did: people "
                "rated its brand voice 86% against 58% before, and it handles emotional "
                "conversations clearly better. It has, however, forgotten a little general "
                "knowledge (94% of what the base model knew, just under the 95% we require), so "
                "we do not recommend delivering it yet. Retraining with a lower learning rate "
                "usually fixes this."
            ),
            "headlines": [
                _headline("Perplexity", "18.42", "11.07", "-39.9%", "≥ 30% lower", True, "automatic"),
                _headline("Emotional intelligence", "2.61 / 5", "3.84 / 5", "+47.1%", "≥ 40% better",
                          True, "judge:gpt-4.1-mini"),
                _headline("Knowledge retention", "41.0%", "38.5%", "93.9% of base", "≥ 95% of base",
                          False, "automatic"),
                _headline("Brand voice", "58.2%", "86.4%", "+28.2 points", "≥ 85%", True,
                          "rules (automatic checks)", provisional=True),
            ],
        },
        "training": {
            "loss": {"train": _loss(1200, 2.95, 1.62), "eval": _loss(1200, 2.90, 1.78, every=100, noise=0.0)},
            "config": [["Learning rate", "2.00e-04"], ["Epochs", "3"], ["LoRA rank (r)", "16"],
                       ["LoRA alpha", "32"], ["LoRA dropout", "0.05"], ["Batch size", "8"],
                       ["Gradient accumulation", "4"], ["Max sequence length", "2,048 tokens"],
                       ["Target modules", "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"],
                       ["Precision", "bf16"], ["Seed", "42"]],
            "cost": "$0.00 (local CPU)",
            "duration": "41 min 22 s",
            "interruptions": [{"when": "7 Dec, 23:05 UTC (step 412)",
                               "what": "Worker stopped responding; resumed from the checkpoint at step 400",
                               "cost": "2 min 10 s lost"}],
        },
        "benchmarks": [
            {"kind": "perplexity", "label": "Perplexity", "metric": "token-weighted perplexity (lower is better)",
             "base": "18.42", "trained": "11.07", "change": "-39.9%", "threshold": "≥ 30% lower",
             "verdict": "Pass", "scorer": "automatic", "provisional": False, "passed": True,
             "n": "24 held-out conversations",
             "chart": {"base": 18.42, "trained": 11.07, "base_interval": [17.1, 19.9],
                       "trained_interval": [10.2, 12.0], "unit": "perplexity"},
             "characteristics": None, "flagged": None,
             "notes": ["Measured on the held-out split, which training never saw."]},
            {"kind": "emotional_intelligence", "label": "Emotional intelligence",
             "metric": "mean of empathy, clarity, appropriateness (1–5)", "base": "2.61", "trained": "3.84",
             "change": "+47.1%", "threshold": "≥ 40% better", "verdict": "Pass",
             "scorer": "judge:gpt-4.1-mini", "provisional": False, "passed": True, "n": "50 scenarios",
             "chart": {"base": 2.61, "trained": 3.84, "base_interval": [2.42, 2.80],
                       "trained_interval": [3.66, 4.01], "unit": "score (1–5)"},
             "characteristics": None, "flagged": [], "notes": None},
            {"kind": "knowledge_retention", "label": "Knowledge retention",
             "metric": "multiple-choice accuracy, trained ÷ base", "base": "41.0%", "trained": "38.5%",
             "change": "93.9% of base", "threshold": "≥ 95% of base", "verdict": "Fail",
             "scorer": "automatic", "provisional": False, "passed": False, "n": "100 questions",
             "chart": {"base": 41.0, "trained": 38.5, "base_interval": None,
                       "trained_interval": [35.2, 41.6], "unit": "accuracy (%)"},
             "characteristics": None, "flagged": None,
             "notes": ["A retention below 95% raised a critical forgetting anomaly.",
                       f"Per-question results: {LONG_URL}"]},
            {"kind": "brand_voice", "label": "Brand voice", "metric": "rubric points met, % of 5",
             "base": "58.2%", "trained": "86.4%", "change": "+28.2 points", "threshold": "≥ 85%",
             "verdict": "Pass", "scorer": "rules (automatic checks)", "provisional": True, "passed": True,
             "n": "30 prompts",
             "chart": {"base": 58.2, "trained": 86.4, "base_interval": [52.0, 64.1],
                       "trained_interval": [81.9, 90.3], "unit": "% of 5"},
             "characteristics": [{"name": name, "base": base, "trained": trained,
                                  "text": f"{base:.1f} → {trained:.1f} ({trained - base:+.1f})"}
                                 for name, base, trained in CHARACTERISTICS],
             "flagged": [{"item_id": "bv-017", "prompt": "My brother says I should put my whole "
                          "emergency fund into an S&P 500 index fund because cash loses value. Is he right?",
                          "reply": FLAGGED_REPLY, "reason": "Promises returns (rubric: never promise returns)"}],
             "notes": None},
        ],
        "examples": {
            "best": [{"item_id": "bv-004", "benchmark": "Brand voice",
                      "messages": [{"role": "user", "content": "I'm 29 and I live paycheck to paycheck. "
                                    "I take home $3,400 after rent and somehow I'm always overdrawn "
                                    "by the 28th. I feel like such a failure."}],
                      "base_reply": BEST_BASE_REPLY, "trained_reply": BEST_TRAINED_REPLY,
                      "base_score": "2.1 / 5", "trained_score": "4.7 / 5", "gap": "+2.6"}],
            "worst": [{"item_id": "ei-031", "benchmark": "Emotional intelligence",
                       "messages": [{"role": "user", "content": "I'm thinking of taking a $12,000 loan "
                                     "from my 401(k) to pay off my car. My wife doesn't know yet."}],
                       "base_reply": "A 401(k) loan lets you borrow from your retirement savings. "
                                     "You repay it with interest through payroll deductions.",
                       "trained_reply": WORST_TRAINED_REPLY,
                       "base_score": "3.3 / 5", "trained_score": "3.1 / 5", "gap": "-0.2"}],
        },
        "appendix": {
            "scores": scores,
            "sets": [{"kind": "brand_voice", "name": "Elena brand voice prompts", "version": "3",
                      "sha256": SET_SHA},
                     {"kind": "knowledge_retention", "name": "General knowledge (MMLU subset)",
                      "version": "1", "sha256": "0" * 64}],
            "dataset": [["File", "elena_morales_chat.jsonl"], ["Conversations", "240"],
                        ["Tokens", "182,440"], ["Held-out split", "10% (24 conversations)"]],
            "versions": [["Control plane", "2026.12.1"], ["transformers", "5.23.0"], ["peft", "0.21.2"],
                         ["trl", "1.16.0"], ["torch", "2.13.0"]],
            "hashes": [["Adapter (adapter_model.safetensors)", ADAPTER_SHA], ["Report source", LONG_URL]],
        },
    }
