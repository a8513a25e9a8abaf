"""What the customer downloads, built once into jobs/<id>/exports/ and reused.

- adapters: a ZIP of adapter/ (adapter_model.safetensors, adapter_config.json, tokenizer files)
  plus README.txt with integration steps;
- metrics: the job's MetricPoint rows as CSV or JSON;
- deployment-package: the adapter, inference.py, requirements-{cpu,gpu,common}.txt, README.md,
  example_prompts.json and model_info.json; `pip install --only-binary=:all: -r
  requirements-cpu.txt && python inference.py` answers the example prompts
  (artifacts/package_template/; tests/artifacts/test_deployment_package.py installs and runs it).

ZIPs are written to a local temporary file (members streamed from storage one chunk at a time),
then copied to storage in one streamed (S3: multipart) upload.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from django.utils.text import slugify

from core import storage
from gpu_worker import model_loading
from training.models import MetricPoint, TrainingJob

from .models import DownloadAudit, ModelArtifact

TEMPLATE_DIR = Path(__file__).resolve().parent / "package_template"
KINDS = tuple(DownloadAudit.Kind.values)
METRIC_FORMATS = ("csv", "json")
DEFAULT_PROMPTS = [
    "Hello! What can you help me with?",
    "Give me three tips to save money each month.",
    "Explain what an emergency fund is in two sentences.",
]
# One requirements file per kind of machine (PyPI's Linux torch is the CUDA build, with ~3 GB of
# nvidia-* wheels a CPU cannot use) and the rest in common.
REQUIREMENTS = ("requirements-cpu.txt", "requirements-gpu.txt", "requirements-common.txt")
# Part of the package's key: raised when what goes into a package changes, so the packages built
# before (2: the requirements split by machine) are rebuilt on the next download.
PACKAGE_LAYOUT = 2
# Already-compressed weights gain nothing from deflate; text files do.
STORED_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


UNNUMBERED_REPORT = "reports/validation_report.pdf"
# Validation's numbered reports (validation.report writes them; the newest is the artifact's).
REPORT_VERSION = re.compile(r"reports/validation_report_v([1-9][0-9]{0,5})\.pdf")
REPORT_FORMAT = re.compile(r"v[1-9][0-9]{0,5}")  # ?format= of a report download: its version


def report_key(job_id, version: int) -> str:
    """The storage key of a job's validation report number `version`."""
    return storage.job_key(job_id, f"reports/validation_report_v{version}.pdf")


def newest_report(rel_keys) -> str | None:
    """Of a job's keys (relative to its prefix), the newest numbered report's, else the
    unnumbered one's (a worker may upload its own), else None."""
    numbered = [(int(m.group(1)), key) for key in rel_keys if (m := REPORT_VERSION.fullmatch(key))]
    if numbered:
        return max(numbered)[1]
    return UNNUMBERED_REPORT if UNNUMBERED_REPORT in rel_keys else None


class ExportError(ValueError):
    """An export that cannot be built (unknown kind or format)."""


class ExportMissing(ExportError):
    """An export that is not there to serve (a validation report not yet written)."""


@dataclass(frozen=True)
class Export:
    key: str
    filename: str
    content_type: str


def choose(kind: str, fmt: str | None = None) -> tuple[str, str]:
    """(kind, format) as an export is named: metrics as csv (when no format is given) or json,
    other kinds with no format; ExportError for an unknown kind or metrics format."""
    if kind not in KINDS:
        raise ExportError(f"unknown artifact kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == DownloadAudit.Kind.VALIDATION_REPORT:
        if fmt and not REPORT_FORMAT.fullmatch(fmt):
            raise ExportError("a report's version is v1, v2, ... (none: the newest)")
        return kind, fmt or ""
    if kind != DownloadAudit.Kind.METRICS:
        return kind, ""
    fmt = "csv" if fmt is None else fmt
    if fmt not in METRIC_FORMATS:
        raise ExportError(f"format must be one of {', '.join(METRIC_FORMATS)}")
    return kind, fmt


def export_for(artifact: ModelArtifact, kind: str, fmt: str = "") -> Export:
    """The storage key and download name of an export, building it first if it is missing."""
    kind, fmt = choose(kind, fmt or None)
    job = artifact.job
    base = slugify(job.name) or str(job.pk)
    if kind == DownloadAudit.Kind.ADAPTERS:
        export = Export(storage.job_key(job.pk, "exports/adapter.zip"), f"{base}-adapter.zip",
                        "application/zip")
        if not (artifact.adapter_zip_path and storage.exists(export.key)):
            build_adapter_zip(artifact, export.key)
            ModelArtifact.objects.filter(pk=artifact.pk).update(adapter_zip_path=export.key)
            artifact.adapter_zip_path = export.key
        return export
    if kind == DownloadAudit.Kind.DEPLOYMENT_PACKAGE:
        export = Export(storage.job_key(job.pk, f"exports/deployment-package-v{PACKAGE_LAYOUT}.zip"),
                        f"{base}-deployment-package.zip", "application/zip")
        if not (artifact.deployment_package_path and storage.exists(export.key)):
            build_deployment_package(artifact, export.key)
            ModelArtifact.objects.filter(pk=artifact.pk).update(deployment_package_path=export.key)
            artifact.deployment_package_path = export.key
        return export
    if kind == DownloadAudit.Kind.VALIDATION_REPORT:
        key = report_key(job.pk, int(fmt[1:])) if fmt else artifact.validation_report_path
        if not key or not storage.exists(key):
            raise ExportMissing(f"validation report {fmt} does not exist" if fmt else "no validation report yet")
        number = REPORT_VERSION.search(key)
        return Export(key, f"{base}-validation-report" + (f"-v{number.group(1)}" if number else "") + ".pdf",
                      "application/pdf")
    export = Export(storage.job_key(job.pk, f"exports/metrics.{fmt}"), f"{base}-metrics.{fmt}",
                    "text/csv; charset=utf-8" if fmt == "csv" else "application/json")
    if not storage.exists(export.key):
        storage.save_bytes(export.key, metrics_csv(job) if fmt == "csv" else metrics_json(artifact))
    return export


# --- Metrics ---------------------------------------------------------------------------------

METRIC_COLUMNS = ("step", "attempt", *MetricPoint.VALUE_FIELDS, "reported_at")


def _metric_rows(job: TrainingJob):
    for point in MetricPoint.objects.filter(job=job).order_by("step").iterator(chunk_size=2000):
        row = {column: getattr(point, column) for column in METRIC_COLUMNS}
        row["reported_at"] = point.reported_at.isoformat()
        yield row


def metrics_csv(job: TrainingJob) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    for row in _metric_rows(job):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue().encode()


def metrics_json(artifact: ModelArtifact) -> bytes:
    job = artifact.job
    document = {
        "job_id": str(job.pk),
        "name": job.name,
        "base_model": job.configuration.get("base_model", ""),
        "summary": artifact.metrics_summary,
        "validation": {
            "perplexity_baseline": artifact.perplexity_baseline,
            "perplexity_trained": artifact.perplexity_trained,
            "perplexity_improvement_pct": artifact.perplexity_improvement_pct,
        },
        "points": list(_metric_rows(job)),
    }
    return json.dumps(document, indent=1).encode()


# --- ZIPs ------------------------------------------------------------------------------------


def _adapter_members(artifact: ModelArtifact) -> list[tuple[str, str]]:
    """(storage key, name inside adapter/) for every file the worker uploaded under adapter/."""
    prefix = storage.job_prefix(artifact.job_id) + "adapter/"
    return [(key, key[len(prefix):]) for key, _size in storage.list_keys(prefix)]


def _write_member(archive: zipfile.ZipFile, arcname: str, key: str) -> None:
    compress = zipfile.ZIP_STORED if arcname.endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
    info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    with storage.open_read(key) as source, archive.open(info, "w", force_zip64=True) as target:
        shutil.copyfileobj(source, target, storage.CHUNK)


def _write_text(archive: zipfile.ZipFile, arcname: str, text: str | bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = mode << 16
    archive.writestr(info, text)


def _build_zip(key: str, fill) -> None:
    with tempfile.TemporaryDirectory(prefix="artifact-zip-") as tmp:
        path = Path(tmp) / "export.zip"
        with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
            fill(archive)
        storage.save_file(key, path)


def _context(artifact: ModelArtifact) -> dict[str, str]:
    job = artifact.job
    hp = job.hyperparameters
    return {
        "job_name": job.name,
        "job_id": str(job.pk),
        "base_model": job.configuration.get("base_model", "") or job.base_model.model_id,
        "base_model_name": job.base_model.name,
        "lora_r": str(hp.get("lora_r", "")),
        "lora_alpha": str(hp.get("lora_alpha", "")),
        "perplexity": _perplexity_line(artifact),
    }


def _perplexity_line(artifact: ModelArtifact) -> str:
    if artifact.perplexity_baseline is None or artifact.perplexity_trained is None:
        return "Validation: not reported."
    line = (f"Validation perplexity: {artifact.perplexity_baseline:.2f} (base) -> "
            f"{artifact.perplexity_trained:.2f} (trained)")
    if artifact.perplexity_improvement_pct is not None:
        line += f", {artifact.perplexity_improvement_pct:.1f}% better"
    return line + "."


def _render(name: str, context: dict[str, str]) -> str:
    return Template((TEMPLATE_DIR / name).read_text()).safe_substitute(context)


def build_adapter_zip(artifact: ModelArtifact, key: str) -> None:
    context = _context(artifact)

    def fill(archive: zipfile.ZipFile) -> None:
        for member_key, name in _adapter_members(artifact):
            _write_member(archive, name, member_key)
        _write_text(archive, "README.txt", _render("ADAPTER_README.txt", context))

    _build_zip(key, fill)


def example_prompts(job: TrainingJob, count: int = 3) -> list[dict[str, str]]:
    """The first user turns of the job's dataset (JSONL, any of the worker's three formats), so
    the package shows what it was trained on; generic prompts when the dataset cannot be read."""
    prompts: list[dict[str, str]] = []
    try:
        with job.training_file.file.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    prompt = _first_user_turn(json.loads(raw))
                    if prompt:
                        prompts.append(prompt)
                if len(prompts) >= count:
                    break
    except Exception:  # noqa: BLE001 - a missing or odd dataset only costs us the nicer prompts
        prompts = []
    return prompts or [{"prompt": p} for p in DEFAULT_PROMPTS[:count]]


def _first_user_turn(record: object) -> dict[str, str] | None:
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("messages"), list):
        system = ""
        for message in record["messages"]:
            if not isinstance(message, dict) or not isinstance(message.get("content"), str):
                continue
            if message.get("role") == "system":
                system = message["content"]
            elif message.get("role") == "user":
                return {"system": system[:2000], "prompt": message["content"][:2000]}
        return None
    if isinstance(record.get("current_user_input"), str):
        return {"system": str(record.get("system_prompt") or "")[:2000],
                "prompt": record["current_user_input"][:2000]}
    if isinstance(record.get("prompt"), str):
        return {"prompt": record["prompt"][:2000]}
    return None


def hub_id(artifact: ModelArtifact, base_model: str) -> str:
    """The base model's Hugging Face Hub id: what the adapter's config records when that is one
    (not a folder of the machine that trained it), else the embedded model's, else `base_model`."""
    try:
        config = json.loads(storage.read_bytes(artifact.adapter_config_path, limit=1024 * 1024))
    except (OSError, ValueError):
        config = {}
    recorded = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if isinstance(recorded, str) and model_loading.is_hub_id(recorded):
        return recorded
    if base_model.startswith(model_loading.EMBEDDED_PREFIX):
        return model_loading.EMBEDDED_HUB_IDS.get(base_model[len(model_loading.EMBEDDED_PREFIX):], "")
    return base_model


def build_deployment_package(artifact: ModelArtifact, key: str) -> None:
    job = artifact.job
    context = _context(artifact)
    hub = hub_id(artifact, context["base_model"])
    context["hub_id"] = hub or context["base_model"]
    root = "deployment-package/"
    model_info = {"job_id": str(job.pk), "job_name": job.name, "base_model": context["base_model"],
                  "hub_id": hub}
    prompts = example_prompts(job)

    def fill(archive: zipfile.ZipFile) -> None:
        for member_key, name in _adapter_members(artifact):
            _write_member(archive, f"{root}adapter/{name}", member_key)
        _write_text(archive, f"{root}inference.py", (TEMPLATE_DIR / "inference.py").read_text(), 0o755)
        for name in REQUIREMENTS:
            _write_text(archive, f"{root}{name}", (TEMPLATE_DIR / name).read_text())
        _write_text(archive, f"{root}README.md", _render("README.md", context))
        _write_text(archive, f"{root}example_prompts.json", json.dumps(prompts, indent=1) + "\n")
        _write_text(archive, f"{root}model_info.json", json.dumps(model_info, indent=1) + "\n")

    _build_zip(key, fill)
