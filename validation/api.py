"""The benchmark-set API under /api/validation/sets/: the built-in sets and one's own uploads.

An upload is a multipart POST of the set's file (JSONL) and, for brand voice, its rubric
(JSON), checked by line and field before anything is written; it may be attached at once to
datasets, templates and not-yet-started jobs that the uploader may see. Another user's set is
a 404, and the built-in sets cannot be changed or deleted.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import Conflict
from training.models import ConfigurationTemplate, TrainingFile, TrainingJob
from training.states import Status

from . import review, sets, share
from .models import BenchmarkSet, ModelReview, ReportShare, ReviewDecision
from .services import MAX_SET_BYTES, ensure_builtin_sets, upload_set


def _sees_everything(user) -> bool:
    return bool(user.is_staff)


def _own(queryset: QuerySet, user) -> QuerySet:
    return queryset if _sees_everything(user) else queryset.filter(created_by=user)


class BenchmarkSetSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True,
                                         help_text="Empty for the built-in sets.")
    datasets = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    templates = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    jobs = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = BenchmarkSet
        fields = ["id", "kind", "name", "version", "description", "owner", "is_builtin", "sha256", "item_count",
                  "source_name", "datasets", "templates", "jobs", "created_at"]
        read_only_fields = fields


class BenchmarkSetDetailSerializer(BenchmarkSetSerializer):
    items = serializers.ListField(child=serializers.DictField(), read_only=True)
    characteristics = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta(BenchmarkSetSerializer.Meta):
        fields = [*BenchmarkSetSerializer.Meta.fields, "characteristics", "items"]
        read_only_fields = fields


class BenchmarkSetUploadSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BenchmarkSet.Kind.choices)
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", max_length=100,
                                  error_messages={"invalid": "use letters, digits, '.', '_' and '-' (up to 100)"})
    version = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,31}$", max_length=32, default="1",
                                     error_messages={"invalid": "use letters, digits, '.', '_', '+' and '-' (up to 32)"})
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    file = serializers.FileField(help_text="The items, one JSON object per line (docs/validation.md).")
    rubric = serializers.FileField(required=False, help_text="Brand voice only: the rubric (JSON).")
    datasets = serializers.ListField(child=serializers.UUIDField(), required=False, default=list)
    templates = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, default=list)
    jobs = serializers.ListField(child=serializers.UUIDField(), required=False, default=list)

    def validate_file(self, value):
        if value.size > MAX_SET_BYTES:  # refused before it is read (services.parse_upload checks again)
            raise serializers.ValidationError(f"is {value.size:,} bytes; a set may be at most {MAX_SET_BYTES:,}")
        return value

    validate_rubric = validate_file

    def _visible(self, model_queryset: QuerySet, ids: list[Any], field: str) -> list[Any]:
        found = list(model_queryset.filter(pk__in=ids))
        missing = sorted({str(i) for i in ids} - {str(o.pk) for o in found})
        if missing:
            raise serializers.ValidationError({field: f"not found: {', '.join(missing)}"})
        return found

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        if attrs["kind"] == sets.BRAND_VOICE and not attrs.get("rubric"):
            raise serializers.ValidationError({"rubric": "a brand-voice set needs its rubric (JSON) as well as its prompts"})
        attrs["datasets"] = self._visible(_own(TrainingFile.objects.all(), user), attrs["datasets"], "datasets")
        attrs["templates"] = self._visible(_own(ConfigurationTemplate.objects.all(), user), attrs["templates"], "templates")
        jobs = self._visible(TrainingJob.objects.visible_to(user), attrs["jobs"], "jobs")
        started = [str(j.pk) for j in jobs if j.status != Status.PENDING]
        if started:
            raise serializers.ValidationError({"jobs": f"already started, validated with the sets they began with: {', '.join(started)}"})
        attrs["jobs"] = jobs
        return attrs


class BenchmarkSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                          mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Benchmark sets: the built-in Elena sets and your own, in the same formats."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["kind", "is_builtin"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return BenchmarkSet.objects.none()
        ensure_builtin_sets()  # listed from the first request on, not only once a job has used them
        return BenchmarkSet.objects.visible_to(self.request.user).select_related("owner").prefetch_related(
            "datasets", "templates", "jobs")

    def get_serializer_class(self):
        if self.action == "create":
            return BenchmarkSetUploadSerializer
        return BenchmarkSetDetailSerializer if self.action == "retrieve" else BenchmarkSetSerializer

    @extend_schema(request={"multipart/form-data": BenchmarkSetUploadSerializer},
                   responses={201: BenchmarkSetDetailSerializer})
    def create(self, request, *args, **kwargs):
        upload = BenchmarkSetUploadSerializer(data=request.data, context={"request": request})
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        rubric = data.get("rubric")
        try:
            row = upload_set(user=request.user, kind=data["kind"], name=data["name"], version=data["version"],
                             description=data["description"], data=data["file"].read(), file_name=data["file"].name,
                             rubric=rubric.read() if rubric else None, rubric_name=rubric.name if rubric else "")
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        row.datasets.set(data["datasets"])
        row.templates.set(data["templates"])
        row.jobs.set(data["jobs"])
        return Response(BenchmarkSetDetailSerializer(row).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: BenchmarkSet) -> None:
        if instance.is_builtin:
            raise exceptions.PermissionDenied("the built-in sets cannot be deleted")
        if instance.owner_id != self.request.user.id and not _sees_everything(self.request.user):
            raise exceptions.NotFound()
        if instance.validations.exists():
            raise Conflict("jobs were validated with this set; it is kept so their reports can name it. "
                           "Upload a new version instead.")
        instance.delete()


# --- The validation report's share links ---------------------------------------------------


class ReportShareSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(help_text="active, expired or revoked.")
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    revoked_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    views = serializers.SerializerMethodField(help_text="Openings, refused ones included.")

    class Meta:
        model = ReportShare
        fields = ("id", "job", "hint", "state", "created_by", "created_at", "expires_at", "revoked_at", "revoked_by",
                  "views")
        read_only_fields = fields

    def get_state(self, obj: ReportShare) -> str:
        return obj.state()

    def get_views(self, obj: ReportShare) -> int:
        counted = getattr(obj, "view_count", None)  # the list's annotation
        return counted if counted is not None else obj.views.count()


class NewReportShareSerializer(ReportShareSerializer):
    url = serializers.CharField(read_only=True, help_text="The web view. Shown only now: keep it.")
    pdf_url = serializers.CharField(read_only=True, help_text="The PDF. Shown only now.")

    class Meta(ReportShareSerializer.Meta):
        fields = (*ReportShareSerializer.Meta.fields, "url", "pdf_url")
        read_only_fields = fields


class ShareRequestSerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, min_value=1, help_text="How long the link opens the report "
                                    "(VALIDATION_SHARE_DAYS by default, at most VALIDATION_SHARE_MAX_DAYS).")

    def validate_days(self, value: int) -> int:
        if value > settings.VALIDATION_SHARE_MAX_DAYS:
            raise serializers.ValidationError(f"At most {settings.VALIDATION_SHARE_MAX_DAYS} days.")
        return value


def _visible_job(request, job_id) -> TrainingJob:
    job = TrainingJob.objects.visible_to(request.user).filter(pk=job_id).first()
    if job is None:
        raise exceptions.NotFound("No such job.")
    return job


class JobReportSharesView(APIView):
    """A job's report share links: list them, or make one (the job's owner or QA)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="job_report_shares", tags=["validation"], responses={200: ReportShareSerializer(many=True)},
                   summary="The share links of a job's validation report (their URLs are shown only when made)")
    def get(self, request, job_id):
        job = _visible_job(request, job_id)
        shares = (ReportShare.objects.filter(job=job).select_related("created_by", "revoked_by")
                  .annotate(view_count=Count("views")))
        return Response(ReportShareSerializer(shares, many=True).data)

    @extend_schema(operation_id="job_report_share_create", tags=["validation"], request=ShareRequestSerializer,
                   responses={201: NewReportShareSerializer, 403: None, 404: None},
                   summary="A link that opens the job's validation report without a login until it expires")
    def post(self, request, job_id):
        job = _visible_job(request, job_id)
        body = ShareRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            made, token = share.issue_share(job, request.user, days=body.validated_data.get("days"))
        except share.ShareRefused as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        made.url = share.share_url(token, request)
        made.pdf_url = share.share_url(token, request, pdf=True)
        return Response(NewReportShareSerializer(made).data, status=status.HTTP_201_CREATED)


class ReportShareRevokeView(APIView):
    """Revoke a share link: its maker, the job's owner or QA."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="report_share_revoke", tags=["validation"], request=None,
                   responses={200: ReportShareSerializer, 403: None, 404: None},
                   summary="Revoke a validation report's share link (it answers 410 from now on)")
    def post(self, request, pk):
        found = ReportShare.objects.filter(pk=pk, job__in=TrainingJob.objects.visible_to(request.user)).first()
        if found is None:
            raise exceptions.NotFound("No such share link.")
        try:
            revoked = share.revoke_share(found, request.user)
        except share.ShareRefused as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        return Response(ReportShareSerializer(revoked).data)


# --- QA's review of a model ------------------------------------------------------------------


class ReviewDecisionSerializer(serializers.ModelSerializer):
    by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ReviewDecision
        fields = ("state", "reason", "by", "at", "report_version", "via")
        read_only_fields = fields


class ModelReviewSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True)
    owner = serializers.SlugRelatedField(source="job.created_by", slug_field="username", read_only=True,
                                         allow_null=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    decisions = ReviewDecisionSerializer(many=True, read_only=True)

    class Meta:
        model = ModelReview
        fields = ("job", "job_name", "owner", "state", "reason", "decided_by", "decided_at", "report_version",
                  "created_at", "decisions")
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=list(review.DECISIONS),
                                       help_text="approve, reject or request_changes (the last two need a reason).")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=review.MAX_REASON)


class JobReviewView(APIView):
    """A completed job's model review: read it, or decide (QA)."""

    permission_classes = [IsAuthenticated]

    def _review(self, request, job_id) -> tuple[TrainingJob, ModelReview | None]:
        job = _visible_job(request, job_id)
        return job, ModelReview.objects.filter(job=job).select_related("job__created_by", "decided_by").first()

    @extend_schema(operation_id="job_review", tags=["validation"], responses={200: ModelReviewSerializer, 404: None},
                   summary="QA's review of a completed job's model, with every decision")
    def get(self, request, job_id):
        _, found = self._review(request, job_id)
        if found is None:
            raise exceptions.NotFound("This job's model has no review: only a completed job's model has one.")
        return Response(ModelReviewSerializer(found).data)

    @extend_schema(operation_id="job_review_decide", tags=["validation"], request=DecisionSerializer,
                   responses={200: ModelReviewSerializer, 400: None, 403: None, 404: None},
                   summary="Approve or reject a model, or ask for changes (QA; a reason for the last two)")
    def post(self, request, job_id):
        job, _ = self._review(request, job_id)
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            decided = review.decide(job, request.user, body.validated_data["decision"],
                                    body.validated_data.get("reason", ""), via="api")
        except review.ReviewRefused as exc:
            if exc.field:
                raise exceptions.ValidationError({exc.field: [exc.message]}) from exc
            raise exceptions.PermissionDenied(exc.message) from exc
        return Response(ModelReviewSerializer(decided).data)


class ReviewQueueView(APIView):
    """QA's queue: the reviews of models that they may see, oldest first, by state."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="review_queue", tags=["validation"], responses={200: ModelReviewSerializer(many=True)},
                   parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=list(ModelReview.State.values),
                                                description="awaiting_review when left out.")],
                   summary="Models awaiting review (or in another state)")
    def get(self, request):
        state = request.query_params.get("state") or ModelReview.State.AWAITING
        if state not in ModelReview.State.values:
            raise exceptions.ValidationError({"state": [f"One of {', '.join(ModelReview.State.values)}."]})
        reviews = (ModelReview.objects.filter(state=state, job__in=TrainingJob.objects.visible_to(request.user))
                   .select_related("job__created_by", "decided_by").prefetch_related("decisions__by")
                   .order_by("created_at"))
        return Response(ModelReviewSerializer(reviews, many=True).data)
