"""One settings module, read from the environment.

With no environment at all this is the embedded default: a SQLite file under var/, tasks run
in-process, files under var/media, the local executor, console email. Production sets
DATABASE_URL, REDIS_URL, the storage and RunPod variables (README.md, docs/ARCHITECTURE.md).
Every value is parsed by a typed helper that fails at start-up with the variable's name, so a
typo never becomes a silent default.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config import checks as _project_checks

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env.str(name, default=default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(sorted(choices))}")
    return value


def env_json(name: str, default: object) -> object:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc.msg} at column {exc.colno}") from exc


# --- Core -------------------------------------------------------------------------------------

# Secret key and DEBUG. SECRET_KEY signs customer download links and worker blob links: whoever
# knows it forges them offline. Without one we are the embedded default on a developer's machine:
# DEBUG on and a fixed key that is public (it is written here). Any key from this repository is
# refused outside DEBUG, so production must set its own; `check --deploy` also reports a weak one
# (config/checks.py).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
EMBEDDED = not SECRET_KEY
if EMBEDDED:
    SECRET_KEY = _project_checks.EMBEDDED_SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", default=EMBEDDED)
if not DEBUG and EMBEDDED:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false; {_project_checks.GENERATE_HINT}")
if not DEBUG and SECRET_KEY in _project_checks.PUBLISHED_SECRET_KEYS:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is a key published in this repository and cannot be used when DJANGO_DEBUG "
        f"is false; {_project_checks.GENERATE_HINT}")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's and Redoc's assets, served from here (works offline)
    "django_celery_beat",
    # Layers, bottom up (docs/ARCHITECTURE.md; .importlinter enforces them): the job, the apps that
    # react to jobs through the job-event hook, the ones that present them.
    "training",
    "monitoring",
    "artifacts",
    "validation",
    "dashboard",
    "notifications",
    "config.apps.ProjectConfig",  # project-level system checks (config/checks.py)
]

MIDDLEWARE = [
    # First, so it wraps every other layer: NUL bytes in paths and queries refused (400 naming the
    # parameter) and every error under /api/ answered as JSON, never an HTML page (config/middleware.py).
    "config.middleware.ApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT (collected in the web image): gunicorn alone serves none, so
    # without this the admin has no CSS or JS with DEBUG off. After SecurityMiddleware, so the
    # HTTPS redirect and HSTS apply to them too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# An empty DATABASE_URL means unset (the embedded SQLite default), as it does for REDIS_URL.
DATABASES = {"default": environ.Env.db_url_config(
    env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded default serves webhooks from threads while the command polls: wait for the
    # write lock instead of failing, and let readers proceed during writes (WAL). Transactions
    # take the write lock when they begin (IMMEDIATE): SQLite has no row locks, so a transaction
    # that reads a job and then writes it (ingestion, a transition) is serialised from its
    # first read, and never fails upgrading a read lock to a write one.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
         "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # --- PostgreSQL connection pool ---------------------------------------------------------
    # DATABASE_POOL_MAX_SIZE > 0 turns on Django's native pool (psycopg_pool): each process
    # (gunicorn worker, Celery child) holds at most that many connections, and a request beyond
    # them waits up to DATABASE_POOL_TIMEOUT seconds for one instead of opening its own, so a burst
    # cannot exhaust the server's max_connections. Size it so that processes x max size stays
    # below the server's limit (docker-compose.yml: 3 web workers and 2 Celery children x 4).
    # Off (0) by default: the test command's pytest-django databases keep plain connections.
    DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 0, minimum=0)
    if DATABASE_POOL_MAX_SIZE:
        DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 1, minimum=0)
        if DATABASE_POOL_MIN_SIZE > DATABASE_POOL_MAX_SIZE:
            raise ImproperlyConfigured(f"DATABASE_POOL_MIN_SIZE={DATABASE_POOL_MIN_SIZE} must be at most "
                                       f"DATABASE_POOL_MAX_SIZE={DATABASE_POOL_MAX_SIZE}")
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": DATABASE_POOL_MIN_SIZE,
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": env_int("DATABASE_POOL_TIMEOUT", 30, minimum=1),
        }
        # CONN_HEALTH_CHECKS (above) makes Django check each connection as it leaves the pool: one
        # the server dropped (restart, idle timeout) is replaced instead of failing the request.
        # The pool keeps the connections; Django refuses persistent connections on top of it.
        DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ----------------------------------------------------------------------------
# Served by WhiteNoise from STATIC_ROOT (see MIDDLEWARE); the web image runs collectstatic. With
# DEBUG off the names are content-hashed (and gzip/brotli copies made) so browsers may cache them
# for good; that needs the manifest collectstatic writes, so DEBUG (the embedded default, the
# tests) keeps plain names.
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
_STATICFILES_BACKEND = ("django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
                        else "whitenoise.storage.CompressedManifestStaticFilesStorage")
# In DEBUG WhiteNoise finds files in the apps as they are (nothing collected); decided here, from
# the DEBUG settings were loaded with, not the one the test runner switches off at run time.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Storage ----------------------------------------------------------------------------------

MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGE_BACKEND = env_choice("STORAGE_BACKEND", "filesystem", {"filesystem", "s3"})
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "location": env.str("AWS_STORAGE_PREFIX", default=""),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            # "path" for MinIO and most S3-compatible stores (docker-compose.yml); boto3's
            # default would address <bucket>.<endpoint host>, which they do not serve.
            "addressing_style": (None if (_style := env_choice(
                "AWS_S3_ADDRESSING_STYLE", "auto", {"auto", "path", "virtual"})) == "auto" else _style),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": _STATICFILES_BACKEND},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Dataset uploads --------------------------------------------------------------------------
# The largest dataset file accepted (REST API and admin), in bytes; a bigger one is answered
# with 413 before its body is read when it says its length, or as soon as the streamed body
# passes the limit (training/uploads.py). Uploaded files always go to a temporary file on disk,
# never to memory, whatever FILE_UPLOAD_MAX_MEMORY_SIZE says.
DATASET_MAX_UPLOAD_BYTES = env_int("DATASET_MAX_UPLOAD_BYTES", 1024**3, minimum=1)
FILE_UPLOAD_HANDLERS = ["training.uploads.LimitedTemporaryFileUploadHandler"]

# --- Worker request bodies ----------------------------------------------------------------------
# The largest body the worker's webhook (POST /api/training/webhook) accepts, in bytes: a bigger
# one is answered with a JSON 413 before it is read (a metrics batch is a few KB). The worker
# storage API's control calls are capped at the smaller of this and 1 MiB (training/worker_storage.py).
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)

# Artifacts (artifacts/): customer download links, worker upload/download URLs, retention.
ARTIFACT_URL_TTL_SECONDS = env_int("ARTIFACT_URL_TTL_SECONDS", 24 * 3600, minimum=60)
WORKER_URL_TTL_SECONDS = env_int("WORKER_URL_TTL_SECONDS", 3600, minimum=60)
# Worker uploads at least this large go to S3 as a multipart upload (presigned part URLs), so
# checkpoints and adapters beyond S3's 5 GB single-PUT limit work and a failed part is retried
# alone. S3 parts are at least 5 MiB (except the last), at most 10,000 per upload.
WORKER_MULTIPART_THRESHOLD_BYTES = env_int("WORKER_MULTIPART_THRESHOLD_BYTES", 256 * 1024 * 1024, minimum=5 * 1024 * 1024)
WORKER_MULTIPART_PART_BYTES = env_int("WORKER_MULTIPART_PART_BYTES", 128 * 1024 * 1024, minimum=5 * 1024 * 1024)
# The largest single file a worker may PUT (S3's single-PUT limit is 5 GB).
ARTIFACT_MAX_UPLOAD_BYTES = env_int("ARTIFACT_MAX_UPLOAD_BYTES", 5 * 1024**3, minimum=1)
CHECKPOINT_RETENTION_DAYS = env_int("CHECKPOINT_RETENTION_DAYS", 7, minimum=0)

# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.schema.DocumentedErrorsSchema",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    # JSON bodies with NUL or lone surrogates in a string are a 400 naming the field
    # (PostgreSQL's text and jsonb cannot hold them).
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.StorableJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LoRA fine-tuning control plane API",
    "DESCRIPTION": "Configure, launch, watch, recover and deliver LoRA/QLoRA fine-tunes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # A job's tier and each of its attempts' tiers are one choice set: one name in the schema.
    "ENUM_NAME_OVERRIDES": {"PricingTierEnum": "training.models.TrainingJob.PricingTier",
                            "BenchmarkKindEnum": "validation.models.BenchmarkSet.Kind"},
    # The docs pages load their JS/CSS from our static files, not a CDN: /api/docs/ renders with no
    # internet (drf-spectacular-sidecar ships the builds).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
# No broker configured means the embedded default: tasks run in-process, synchronously, at the
# moment they are enqueued (which our services do on transaction commit).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None  # Results live in our own tables; nothing reads Celery results.
# A task is acknowledged only after it finishes, so a worker killed mid-task gets it redelivered.
# Our tasks are idempotent (primary key in, re-fetch, compare-and-set), so a redelivery is safe.
CELERY_TASK_ACKS_LATE = True
# ...and also when the worker process itself dies (SIGKILL, OOM killer): requeue, don't drop.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task at a time per process: a slow launch must not hold other tasks hostage in a prefetch buffer.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers an unacknowledged task after this many seconds; it must exceed the longest
# task (a RunPod launch with retries takes a few minutes), or a running task is started twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    # Sweep for abandoned tasks every 10 s (kombu's default scans only every 10th sweep, ~100 s),
    # so a task whose worker died comes back within the visibility timeout plus ~10 s.
    "unacked_restore_throttle": 1,
}
# Hard and soft limits bound the longest task below the visibility timeout.
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_SOFT_TIME_LIMIT = 840
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Email ------------------------------------------------------------------------------------

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
ANYMAIL = env_json("ANYMAIL", default={})
# For EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
# A mail server that hangs must not hold a delivery task past the claim lease.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="training@localhost")

# --- Training ---------------------------------------------------------------------------------

# The URL the worker uses to reach this control plane (webhook, storage API). The embedded
# `train` command serves one on an ephemeral port and overrides this.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Notifications (notifications/) -----------------------------------------------------------

# Links in emails and Slack messages point here (the admin dashboard): PUBLIC_BASE_URL as
# configured by default. Read now, because `manage.py train` later points PUBLIC_BASE_URL at its
# short-lived webhook server, which a link in an email must not name.
NOTIFICATIONS_SITE_URL = env.str("NOTIFICATIONS_SITE_URL", default=PUBLIC_BASE_URL).rstrip("/")
# Tries before a transiently failing notification is given up (30 s, 1, 2, 4 ... minutes apart,
# capped at an hour; a 429's Retry-After is honoured).
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 8, minimum=1)
NOTIFICATION_RETRY_BASE_SECONDS = env_int("NOTIFICATION_RETRY_BASE_SECONDS", 30, minimum=1)
# A claimed notification whose sender vanished (a killed worker) is due again after this long.
# Longer than any send takes (each channel times out after 10 s), so a live sender is never
# overtaken.
NOTIFICATION_CLAIM_LEASE_SECONDS = env_int("NOTIFICATION_CLAIM_LEASE_SECONDS", 120, minimum=1)
# Customer webhooks and Slack URLs must be public https hosts; a private deployment (or the
# tests, with local receivers) may allow loopback and private addresses.
NOTIFICATIONS_ALLOW_PRIVATE_URLS = env_bool("NOTIFICATIONS_ALLOW_PRIVATE_URLS", default=False)

# Validation (docs/validation.md). People who score replies blind and decide on models: this group
# (or the validation.score_replies permission).
VALIDATION_QA_GROUP = env.str("VALIDATION_QA_GROUP", default="QA")
# Each benchmark set sent to a worker is cut to its first N items (0: all). For quick checks such
# as the test suite's end-to-end jobs; a cut suite's figures are not the benchmark's.
VALIDATION_MAX_ITEMS = env_int("VALIDATION_MAX_ITEMS", 0, minimum=0)
# The playground's replies (validation/playground.py): greedy, at most this many new tokens each.
VALIDATION_PLAYGROUND_MAX_NEW_TOKENS = env_int("VALIDATION_PLAYGROUND_MAX_NEW_TOKENS", 192, minimum=1)
# How long a validation report's share link opens it without a login (days), unless its maker
# chooses fewer or more (at most VALIDATION_SHARE_MAX_DAYS).
VALIDATION_SHARE_DAYS = env_int("VALIDATION_SHARE_DAYS", 30, minimum=1)
# Whether a QA member may approve a model they trained themselves (four eyes by default).
VALIDATION_QA_SELF_APPROVAL = env_bool("VALIDATION_QA_SELF_APPROVAL", default=False)
VALIDATION_SHARE_MAX_DAYS = env_int("VALIDATION_SHARE_MAX_DAYS", 365, minimum=1)

# --- Training (continued) ----------------------------------------------------------------------

# An executor kind: checked against the executor registry by a system check (training/checks.py,
# training.E001), since settings cannot import the training app that holds the registry.
DEFAULT_EXECUTOR = env.str("DEFAULT_EXECUTOR", default="local")
# Users in this group see every job, like staff.
TRAINING_ALL_JOBS_GROUP = env.str("TRAINING_ALL_JOBS_GROUP", default="training-operators")
HEARTBEAT_INTERVAL_SECONDS = env_int("HEARTBEAT_INTERVAL_SECONDS", 30, minimum=1)
# A worker whose last heartbeat is older than this many intervals is late (see below).
HEARTBEAT_STALE_FACTOR = env_int("HEARTBEAT_STALE_FACTOR", 3, minimum=2)
# Worker liveness (training/liveness.py). A silent worker is only *late* while its executor still
# reports it running or starting: the poll records one `anomaly` warning (kind heartbeat_stale)
# and leaves it alone; a worker the executor reports gone or exited is interrupted at once.
# Start-up (process or pod start, image pull, imports, model download and load) has its own
# grace, counted from the launch, before the first event is expected. A worker the executor
# reports running but silent for HEARTBEAT_HARD_LIMIT_SECONDS (after its last event, or after
# the start-up grace) is stopped as hung and the attempt counts as interrupted.
WORKER_STARTUP_GRACE_SECONDS = env_int("WORKER_STARTUP_GRACE_SECONDS", 600, minimum=0)
HEARTBEAT_HARD_LIMIT_SECONDS = env_int("HEARTBEAT_HARD_LIMIT_SECONDS", 1800, minimum=1)
CHECKPOINT_INTERVAL_STEPS = env_int("CHECKPOINT_INTERVAL_STEPS", 100, minimum=1)
WORKER_PYTHON = env.str("WORKER_PYTHON", default="")  # interpreter for the local executor; "" = this one
WORKER_DEVICE = env_choice("WORKER_DEVICE", "auto", {"auto", "cpu", "cuda"})
GPU_WORKER_CACHE = env.str("GPU_WORKER_CACHE", default="")

# GPU price and throughput table. Prices from the product brief (seed 002): H100 PCIe $2.49/h
# spot, $7.99/h on-demand. Throughput is a prior in tokens processed per second (prompt + response,
# no padding: the worker's tokens_per_second) per billion parameters of the base model (QLoRA,
# 4-bit); measured throughput of completed jobs replaces it. 2500 reproduces seed 002's preset
# durations (Conservative 8-10 h, Balanced 12-15 h, Aggressive 18-20 h) for Llama 3 70B on
# ~1,000 conversations x ~600 tokens (training/estimate.py).
GPU_TABLE: dict = env_json(
    "GPU_TABLE",
    default={
        "H100_PCIE_80GB": {
            "label": "NVIDIA H100 PCIe 80GB",
            "runpod_gpu_type_id": "NVIDIA H100 PCIe",
            "spot_per_hour": 2.49,
            "on_demand_per_hour": 7.99,
            "tokens_per_second_per_billion_params": 2500.0,
            "memory_gb": 80,
        },
        "CPU_LOCAL": {
            "label": "This machine's CPU (embedded default)",
            "spot_per_hour": 0.0,
            "on_demand_per_hour": 0.0,
            # The fresh-clone demo (SmolLM2-135M, balanced, 2 cores, bf16 on AMX) trained in 13.2 min
            # where 45 predicted 7.3: 27 matches it; an AVX2 CPU in fp32 is slower, inside the band.
            "tokens_per_second_per_billion_params": 27.0,
            "memory_gb": 0,
            # The local executor starts a process, not a pod: seconds, not ESTIMATE_OVERHEAD_MINUTES'.
            "startup_minutes": 0.1,
        },
    },
)
for _gpu, _row in GPU_TABLE.items():
    for _key in ("spot_per_hour", "on_demand_per_hour", "tokens_per_second_per_billion_params", "startup_minutes"):
        if _key == "startup_minutes" and _key not in _row:
            continue  # optional: ESTIMATE_OVERHEAD_MINUTES["startup"] by default
        if not isinstance(_row.get(_key), int | float) or _row[_key] < 0:
            raise ImproperlyConfigured(f"GPU_TABLE[{_gpu!r}].{_key} must be a non-negative number")
DEFAULT_GPU_TYPE = env.str("DEFAULT_GPU_TYPE", default="H100_PCIE_80GB")
if DEFAULT_GPU_TYPE not in GPU_TABLE:
    raise ImproperlyConfigured(f"DEFAULT_GPU_TYPE={DEFAULT_GPU_TYPE!r} is not in GPU_TABLE ({', '.join(GPU_TABLE)})")
ESTIMATE_OVERHEAD_MINUTES = {"startup": 4.0, "model_loading": 10.0, "validation": 8.0}
MAX_RECOVERIES = env_int("MAX_RECOVERIES", 5, minimum=0)
# A launch that fails transiently (no capacity, network, RunPod 5xx) is tried again after
# LAUNCH_RETRY_BASE_SECONDS x 2^n (capped at LAUNCH_RETRY_MAX_SECONDS), up to LAUNCH_RETRY_LIMIT
# times; each wait is a `launch_retry` event on the job. 0 turns automatic retries off.
LAUNCH_RETRY_LIMIT = env_int("LAUNCH_RETRY_LIMIT", 5, minimum=0)
LAUNCH_RETRY_BASE_SECONDS = env_int("LAUNCH_RETRY_BASE_SECONDS", 30, minimum=1)
LAUNCH_RETRY_MAX_SECONDS = env_int("LAUNCH_RETRY_MAX_SECONDS", 600, minimum=1)
# After this many interruptions of a spot job, its next attempts run on-demand (0: never).
SPOT_FALLBACK_AFTER_INTERRUPTIONS = env_int("SPOT_FALLBACK_AFTER_INTERRUPTIONS", 0, minimum=0)
MONEY = Decimal("0.01")

# RunPod (issue 4 builds the executor on these).
RUNPOD_API_KEY = env.str("RUNPOD_API_KEY", default="")
RUNPOD_API_BASE_URL = env.str("RUNPOD_API_BASE_URL", default="")
RUNPOD_WORKER_IMAGE = env.str("RUNPOD_WORKER_IMAGE", default="ghcr.io/example/lora-gpu-worker:latest")
# SECURE keeps job data off community hosts; ALL finds capacity more often.
RUNPOD_CLOUD_TYPE = env_choice("RUNPOD_CLOUD_TYPE", "SECURE", {"SECURE", "COMMUNITY", "ALL"})
# Spot bid in $/h per GPU; unset = the GPU_TABLE spot price of the job's GPU.
RUNPOD_SPOT_BID_PER_GPU = env_json("RUNPOD_SPOT_BID_PER_GPU", None)
if RUNPOD_SPOT_BID_PER_GPU is not None and (
        not isinstance(RUNPOD_SPOT_BID_PER_GPU, int | float) or RUNPOD_SPOT_BID_PER_GPU <= 0):
    raise ImproperlyConfigured(f"RUNPOD_SPOT_BID_PER_GPU={RUNPOD_SPOT_BID_PER_GPU!r} must be a positive number")
# The container disk holds the downloaded base model when there is no network volume (a 70B
# model is ~140 GB of weights).
RUNPOD_CONTAINER_DISK_GB = env_int("RUNPOD_CONTAINER_DISK_GB", 200, minimum=10)
RUNPOD_VOLUME_GB = env_int("RUNPOD_VOLUME_GB", 0, minimum=0)
RUNPOD_VOLUME_MOUNT_PATH = env.str("RUNPOD_VOLUME_MOUNT_PATH", default="/runpod-volume")
# A network volume for the model cache, shared by all pods (it pins them to its data center).
RUNPOD_NETWORK_VOLUME_ID = env.str("RUNPOD_NETWORK_VOLUME_ID", default="")

# --- Security (production) --------------------------------------------------------------------

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # The worker's webhook and storage API are reached over plain HTTP inside a private network
    # in some deployments; those paths are exempt from the redirect.
    SECURE_REDIRECT_EXEMPT = [r"^api/training/webhook$", r"^api/worker/"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
    "loggers": {"training": {"level": env.str("LOG_LEVEL", default="INFO"), "propagate": True}},
}
