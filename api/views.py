"""REST endpoints under /api/training/. Thin: parse, scope, call a service, serialize.

Every state change goes through training.services.jobs; refusals (IllegalTransition) and
service validation errors are turned into 409 and 400 by core.api_errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Max, Min, Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import Conflict, validation_error_detail
from monitoring.services import trend_analysis
from training import defaults
from training.models import (
    BaseModel,
    ConfigurationTemplate,
    HyperparameterPreset,
    JobEvent,
    MetricPoint,
    TrainingFile,
    TrainingJob,
)
from training.services import jobs as job_services
from training.services.datasets import (
    UploadTooLarge,
    delete_training_file,
    ingest_training_file,
    upload_limit_message,
)
from training.services.estimate import estimate_for_configuration
from training.services.metric_summaries import downsampled_steps
from training.services.support import build_error_report
from training.uploads import declared_too_large, upload_too_large
from validation.services import reply_pairs, validation_overview

from . import serializers as s
from .filters import JobEventFilter, JobFilter
from .permissions import IsOwnerOrOperator, scope_to_user

CONFLICT = OpenApiResponse(
    inline_serializer("Conflict", {"detail": serializers.CharField()}),
    description="The job's current state does not allow this; `detail` says why.",
)


@contextmanager
def service_errors(container: str, top_level: Iterable[str]) -> Iterator[None]:
    """Turn a service's ValidationError into a 400 whose keys match the request body: keys
    naming a request field stay on top, settings inside `container` (e.g. an override's
    `lora_r`) are nested under it."""
    try:
        yield
    except DjangoValidationError as exc:
        detail = validation_error_detail(exc)
        top = {k: v for k, v in detail.items() if k in top_level}
        nested = {k: v for k, v in detail.items() if k not in top_level}
        if nested:
            top[container] = nested
        raise serializers.ValidationError(top) from exc


def json_safe(value: Any) -> Any:
    """Decimals as strings, like the DecimalFields of the other responses."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# --- Catalogue -------------------------------------------------------------------------------


class PresetViewSet(viewsets.ReadOnlyModelViewSet):
    """Active hyperparameter presets."""

    queryset = HyperparameterPreset.objects.filter(is_active=True)
    serializer_class = s.PresetSerializer
    lookup_field = "slug"


class BaseModelViewSet(viewsets.ReadOnlyModelViewSet):
    """Active base models."""

    queryset = BaseModel.objects.filter(is_active=True)
    serializer_class = s.BaseModelSerializer
    lookup_field = "slug"


# --- Training files --------------------------------------------------------------------------


class UploadTooLargeError(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, limit: int):
        super().__init__({"file": [upload_limit_message(limit)]})


UPLOAD_TOO_LARGE = OpenApiResponse(
    inline_serializer("UploadTooLarge", {"file": serializers.ListField(child=serializers.CharField())}),
    description="The file is over DATASET_MAX_UPLOAD_BYTES; `file` names the limit.",
)


@extend_schema_view(
    create=extend_schema(
        request=s.TrainingFileUploadSerializer,
        responses={
            202: OpenApiResponse(s.TrainingFileDetailSerializer,
                                 description="Stored; validation runs in the background (validation_status "
                                             "pending -> validating -> valid or invalid)."),
            200: OpenApiResponse(s.TrainingFileDetailSerializer, description="You had uploaded these bytes before."),
            413: UPLOAD_TOO_LARGE,
        },
    ),
    destroy=extend_schema(responses={204: None, 409: CONFLICT}),
)
class TrainingFileViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Uploaded datasets with their validation report and token statistics."""

    permission_classes = [IsAuthenticated, IsOwnerOrOperator]
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["validation_status", "format"]
    ordering_fields = ["created_at", "name", "record_count", "size_bytes"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return TrainingFile.objects.none()
        return scope_to_user(TrainingFile.objects.select_related("created_by", "blob"), self.request.user)

    def get_serializer_class(self):
        if self.action == "list":
            return s.TrainingFileSerializer
        if self.action == "create":
            return s.TrainingFileUploadSerializer
        return s.TrainingFileDetailSerializer

    def create(self, request, *args, **kwargs):
        limit = settings.DATASET_MAX_UPLOAD_BYTES
        if declared_too_large(request):  # before reading any of the body
            raise UploadTooLargeError(limit)
        upload = self.get_serializer(data=request.data)
        if upload_too_large(request._request):  # the upload handler stopped it at the limit
            raise UploadTooLargeError(limit)
        upload.is_valid(raise_exception=True)
        try:
            training_file = ingest_training_file(
                uploaded=upload.validated_data["file"],
                name=upload.validated_data.get("name", ""),
                user=request.user,
                description=upload.validated_data["description"],
            )
        except UploadTooLarge as exc:
            raise UploadTooLargeError(exc.limit) from exc
        # A new record answers 202: its validation runs in the background (pending ->
        # validating -> valid/invalid; poll the record). The same bytes again from the same
        # user answer 200 with the record they already have.
        return Response(
            s.TrainingFileDetailSerializer(training_file, context=self.get_serializer_context()).data,
            status=status.HTTP_200_OK if getattr(training_file, "was_duplicate", False) else status.HTTP_202_ACCEPTED,
        )

    def perform_destroy(self, instance: TrainingFile) -> None:
        used_by = instance.jobs.count()
        if used_by:
            raise Conflict(
                f"Training file '{instance.name}' is used by {used_by} job(s); it can be deleted "
                "only when no job uses it."
            )
        # PROTECT still guards against a job created meanwhile (-> 409); the shared stored
        # bytes go only with their last record.
        delete_training_file(instance)


# --- Jobs ------------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(request=s.JobCreateSerializer, responses={201: s.JobDetailSerializer}),
    destroy=extend_schema(responses={204: None, 409: CONFLICT}),
)
class TrainingJobViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Training jobs: create, watch, start, cancel, retry, delete (only if never started)."""

    permission_classes = [IsAuthenticated, IsOwnerOrOperator]
    filter_backends = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = JobFilter
    search_fields = ["name", "notes"]
    ordering_fields = [
        "created_at", "name", "status", "started_at", "completed_at", "cost_estimate", "actual_cost",
        "progress_percentage",
    ]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TrainingJob.objects.none()
        jobs = (
            TrainingJob.objects.visible_to(self.request.user)
            .select_related("training_file", "base_model", "preset", "created_by")
            .prefetch_related("tags")
        )
        if self.action != "list":
            jobs = jobs.select_related("parent").prefetch_related(
                Prefetch("retries", queryset=TrainingJob.objects.order_by("created_at"))
            )
        return jobs

    def get_serializer_class(self):
        return {
            "list": s.JobListSerializer,
            "create": s.JobCreateSerializer,
            "retry": s.RetrySerializer,
            "save_as_template": s.SaveAsTemplateSerializer,
        }.get(self.action, s.JobDetailSerializer)

    def detail_response(self, job: TrainingJob, code: int = status.HTTP_200_OK) -> Response:
        return Response(s.JobDetailSerializer(job, context=self.get_serializer_context()).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors("overrides", top_level=serializer.fields):
            job = job_services.create_job(user=request.user, **serializer.validated_data)
        return self.detail_response(job, status.HTTP_201_CREATED)

    def perform_destroy(self, instance: TrainingJob) -> None:
        job_services.delete_job(instance)

    @extend_schema(request=None, responses={200: s.JobDetailSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self.detail_response(job_services.start_job(self.get_object(), user=request.user))

    @extend_schema(request=None, responses={200: s.JobDetailSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self.detail_response(job_services.cancel_job(self.get_object(), user=request.user))

    @extend_schema(responses={201: s.RetryResultSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors("overrides", top_level=()):
            new_job = job_services.retry_job(job, user=request.user, overrides=serializer.validated_data["overrides"])
        return Response(
            {
                "job": s.JobDetailSerializer(new_job, context=self.get_serializer_context()).data,
                "changes": json_safe(job_services.config_diff(job, new_job)),
            },
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        parameters=[s.MetricsQuerySerializer],
        responses=s.MetricsSerializer,
        description=("The job's metric history in step order; `max_points` downsamples it: the first and last "
                     "points, and the lowest and highest train_loss of each aligned step range (ranges of 2^k "
                     "steps, the finest k that fits). `analysis` is the trend analysis and recommendation."),
    )
    @action(detail=True, methods=["get"])
    def metrics(self, request, pk=None):
        job = self.get_object()
        query = s.MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fields = ["step", "attempt", *MetricPoint.VALUE_FIELDS, "reported_at"]
        rows = MetricPoint.objects.filter(job=job).order_by("step")
        span = rows.aggregate(total=Count("id"), first=Min("step"), last=Max("step"))
        total = span["total"]
        max_points = query.validated_data.get("max_points")
        if max_points is not None and total > max_points:
            # The steps downsample_by_step_ranges keeps, read off the summaries the ingestion
            # maintains (tested to agree): a few hundred rows whatever the history's length.
            rows = rows.filter(step__in=downsampled_steps(job.pk, span["first"], span["last"], max_points))
        points = list(rows.values(*fields))
        return Response(
            {
                "job": job.pk,
                "total_points": total,
                "downsampled": len(points) < total,
                "analysis": trend_analysis(job),
                "points": s.MetricPointSerializer(points, many=True).data,
            }
        )

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description=(
            "The validation suite's results (docs/validation.md): per benchmark (perplexity, emotional "
            "intelligence, knowledge retention, brand voice) the base and trained figures, the change, its "
            "95 % bootstrap interval, the seed's threshold, pass or fail, and which scorer produced it "
            "(people, the judge model, or the automatic rules). `status` is not_started until the job's "
            "worker is configured, pending until it reports."
        ),
    )
    @action(detail=True, methods=["get"])
    def validation(self, request, pk=None):
        job = self.get_object()
        return Response({"job": job.pk, **validation_overview(job)})

    @extend_schema(
        parameters=[OpenApiParameter("benchmark", str, enum=["emotional_intelligence", "brand_voice"],
                                     description="Only this benchmark's items.")],
        responses={200: OpenApiTypes.OBJECT},
        description="Each scenario and brand-voice prompt with the base and trained replies side by side, the "
                    "automatic checks of each and every score given to them.",
    )
    @action(detail=True, methods=["get"], url_path="validation/replies", filter_backends=[])
    def validation_replies(self, request, pk=None):
        job = self.get_object()
        benchmark = request.query_params.get("benchmark") or None
        if benchmark not in (None, "emotional_intelligence", "brand_voice"):
            raise serializers.ValidationError({"benchmark": "use emotional_intelligence or brand_voice"})
        return Response({"job": job.pk, "replies": reply_pairs(job, benchmark)})

    @extend_schema(
        request=None,
        responses={200: OpenApiTypes.OBJECT},
        description=(
            "Everything a support ticket needs, as one JSON file: the job and its configuration, the "
            "classified error with its suggested fix and configuration change, recovery figures, the "
            "latest 200 events, and the last 200 lines of the worker's output where the executor can "
            "read them (the local executor can; on RunPod the error event carries the trace tail). "
            "The job's secret is masked."
        ),
    )
    @action(detail=True, methods=["get"], url_path="error-report")
    def error_report(self, request, pk=None):
        job = self.get_object()
        response = Response(build_error_report(job))
        response["Content-Disposition"] = f'attachment; filename="error-report-{job.pk}.json"'
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, many=True, enum=JobEvent.Type.values, explode=False,
                             description="Event types, comma-separated."),
            OpenApiParameter("page", int),
        ],
        responses=inline_serializer(
            "PaginatedJobEventList",
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": s.JobEventSerializer(many=True),
            },
        ),
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def events(self, request, pk=None):
        job = self.get_object()
        filterset = JobEventFilter(request.query_params, queryset=job.events.order_by("received_at", "id"))
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        events = s.JobEventSerializer(page, many=True, context={"job_secret": job.secret})
        return self.get_paginated_response(events.data)

    @extend_schema(responses={201: s.TemplateSerializer})
    @action(detail=True, methods=["post"], url_path="save-as-template")
    def save_as_template(self, request, pk=None):
        job = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["name"]
        if ConfigurationTemplate.objects.filter(created_by=request.user, name=name).exists():
            raise serializers.ValidationError({"name": [f"There is already a template called '{name}'."]})
        template = ConfigurationTemplate.objects.create(
            name=name,
            description=serializer.validated_data["description"],
            base_model=job.base_model,
            preset=job.preset,
            # Everything the job ran with, so a job from the template reproduces it exactly.
            configuration={
                "hyperparameters": job.hyperparameters,
                **{option: getattr(job, option) for option in job_services.JOB_OPTIONS},
            },
            created_by=request.user,
        )
        return Response(s.TemplateSerializer(template, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


# --- Templates -------------------------------------------------------------------------------


class TemplateViewSet(viewsets.ModelViewSet):
    """Saved configurations: a base model, a preset and overrides."""

    permission_classes = [IsAuthenticated, IsOwnerOrOperator]
    ordering_fields = ["name", "created_at", "usage_count", "last_used_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ConfigurationTemplate.objects.none()
        templates = ConfigurationTemplate.objects.select_related("base_model", "preset", "created_by")
        return scope_to_user(templates, self.request.user)

    def get_serializer_class(self):
        return s.TemplateJobCreateSerializer if self.action == "create_job" else s.TemplateSerializer

    def perform_create(self, serializer) -> None:
        serializer.save(created_by=self.request.user)

    @extend_schema(request=s.TemplateJobCreateSerializer, responses={201: s.JobDetailSerializer})
    @action(detail=True, methods=["post"], url_path="create-job")
    def create_job(self, request, pk=None):
        template = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors("overrides", top_level=serializer.fields):
            job = job_services.create_job(user=request.user, template=template, **serializer.validated_data)
        return Response(s.JobDetailSerializer(job, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)


# --- Cost estimate ---------------------------------------------------------------------------


class CostEstimateView(APIView):
    """What a configuration would cost and how long it would take, before creating a job."""

    @extend_schema(
        parameters=[s.CostEstimateQuerySerializer],
        responses=OpenApiResponse(
            OpenApiTypes.OBJECT,
            description='estimate_for\'s result ({"cost": {low, expected, high}, "duration_minutes": ..., '
                        '"stages": ..., "throughput_source": ...}) plus the resolved `configuration`.',
        ),
    )
    def get(self, request):
        query = s.CostEstimateQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        params = query.validated_data
        training_file = params["training_file"]
        # The same defaults create_job applies (training.defaults), so an estimate matches the
        # job it predicts.
        with service_errors("overrides", top_level=("training_file",)):
            defaults.require_trainable(training_file)
        overrides = dict(params.get("overrides") or {})
        preset = defaults.preset_for(params.get("preset"), overrides=overrides)
        if "gpu_type" in params:
            overrides["gpu_type"] = params["gpu_type"]
        if "pricing_tier" in params:
            overrides["gpu_pricing_tier"] = params["pricing_tier"]
        base_model = params.get("base_model") or defaults.default_base_model()
        with service_errors("overrides", top_level=("gpu_type",)):
            configuration = job_services.resolve_configuration(
                base_model=base_model, preset=preset, overrides=overrides
            )
        estimate = estimate_for_configuration(training_file=training_file, base_model=base_model,
                                              configuration=configuration)
        return Response(json_safe({**estimate, "configuration": configuration}))

