"""The notification API under /api/notifications/: one's own settings and channels, one's own
notifications, the kinds. Token or session authentication, like the training API.

Every response masks what works as a password: a Slack incoming-webhook URL always
(https://hooks.slack.com/…last4), a webhook's whsec_ signing secret everywhere except the one
response that created or rotated it. Errors are the project's JSON errors ({"detail": ...} or
field → messages); drf-spectacular documents each operation, and the project's schema class
(REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS) adds the errors every operation can answer.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.widgets import QueryArrayWidget
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.fields import empty
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response
from rest_framework.views import APIView

from .forms import (
    CHANNEL_NAMES,
    KIND_NAMES,
    MAX_PROJECTS,
    PROJECT_MAX_LENGTH,
    kinds_problems,
    normalized_kinds,
    rotate_secret,
    save_channel,
    target_problem,
)
from .kinds import DEFAULT_KINDS, LABELS, URGENT, Kind
from .models import CHANNEL_KINDS, Notification, NotificationSettings, UserChannel, mask

TAG = "notifications"

# The choice sets as components of their own, named here: drf-spectacular would otherwise name
# them from the field ("status", "kind"), which the training API's serializers use for other
# choice sets, and rename theirs to resolve the collision.
MESSAGE_KINDS = [value for value, _ in Notification._meta.get_field("kind").choices]


@extend_schema_field({"type": "string", "enum": CHANNEL_NAMES}, component_name="NotificationChannelEnum")
class ChannelChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=CHANNEL_KINDS, **kwargs)


@extend_schema_field({"type": "string", "enum": KIND_NAMES}, component_name="NotificationKindEnum")
class KindChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[(k.value, LABELS[k]) for k in Kind], **kwargs)


@extend_schema_field({"type": "string", "enum": MESSAGE_KINDS}, component_name="NotificationMessageKindEnum")
class MessageKindChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Notification._meta.get_field("kind").choices, **kwargs)


@extend_schema_field({"type": "string", "enum": list(Notification.Status.values)},
                     component_name="NotificationStatusEnum")
class StatusChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Notification.Status.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": list(NotificationSettings.Scope.values),
                      "description": "mine: jobs you created; projects: jobs of `projects` that you may see; all: "
                                     "every job you may see."}, component_name="NotificationScopeEnum")
class ScopeChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=NotificationSettings.Scope.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": list(NotificationSettings.Digest.values),
                      "description": "off: each as it happens; hourly or daily: non-urgent email as one digest."},
                     component_name="NotificationDigestEnum")
class DigestChoiceField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=NotificationSettings.Digest.choices, **kwargs)


class BooleanField(serializers.BooleanField):
    """Left out of a form-encoded body: not given (DRF reads a missing checkbox as false), so a
    PUT keeps the value as it does with JSON."""

    default_empty_html = empty


# --- Settings ---------------------------------------------------------------------------------

KINDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": ("Notification kind → the channels it goes to. A kind left out (or with an empty list) is "
                    "not sent. Kinds: GET /api/notifications/kinds/."),
    "properties": {kind: {"type": "array", "items": {"type": "string", "enum": CHANNEL_NAMES}}
                   for kind in KIND_NAMES},
    "additionalProperties": False,
    "example": {str(k): list(v) for k, v in DEFAULT_KINDS.items()},
}


@extend_schema_field(KINDS_SCHEMA)
class KindsField(serializers.Field):
    """{kind: [channels]}; an unknown kind or channel is an error keyed by the kind."""

    default_error_messages = {"invalid": "Must be an object mapping a notification kind to a list of channels."}

    def to_internal_value(self, data: Any) -> dict[str, list[str]]:
        problems = kinds_problems(data)
        if "" in problems:
            self.fail("invalid")
        if problems:
            raise serializers.ValidationError({kind: [message] for kind, message in problems.items()})
        return normalized_kinds(data)

    def to_representation(self, value: Any) -> dict[str, list[str]]:
        return normalized_kinds(value or {})


class NotificationSettingsSerializer(serializers.ModelSerializer):
    kinds = KindsField(required=False)
    scope = ScopeChoiceField(required=False)
    digest = DigestChoiceField(required=False)
    daily_report = BooleanField(required=False, help_text="Email me the daily training report.")
    projects = serializers.ListField(
        child=serializers.CharField(max_length=PROJECT_MAX_LENGTH), max_length=MAX_PROJECTS, required=False,
        help_text="Project names whose jobs you hear about, when `scope` is `projects`.")
    is_default = serializers.SerializerMethodField(
        help_text="True until you save settings of your own: these are the defaults (the owner hears about "
                  "completed and failed jobs by email).")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = NotificationSettings
        fields = ["kinds", "scope", "projects", "digest", "daily_report", "is_default", "updated_at"]

    def get_is_default(self, obj: NotificationSettings) -> bool:
        return obj.pk is None

    def validate_projects(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance
        scope = attrs.get("scope", instance.scope if instance else NotificationSettings.Scope.MINE)
        projects = attrs.get("projects", instance.projects if instance else [])
        if scope == NotificationSettings.Scope.PROJECTS and not projects:
            raise serializers.ValidationError({"projects": ["Name at least one project when `scope` is `projects`."]})
        return attrs


# --- Channels ---------------------------------------------------------------------------------


class NotificationChannelSerializer(serializers.Serializer):
    kind = ChannelChoiceField(read_only=True)
    target = serializers.CharField(
        max_length=500, allow_blank=True, required=False,
        help_text="Email: an address (blank: your account's). Slack: the incoming-webhook URL (masked in every "
                  "response). Webhook: your https endpoint. Public https hosts only. Left out of a PUT: kept.")
    address = serializers.CharField(read_only=True, help_text="Where messages go: for email the address used "
                                                              "(the target, or your account's); else the target.")
    secret = serializers.CharField(
        read_only=True,
        help_text="Webhook only: the whsec_ signing secret (Standard Webhooks). In full only in the response that "
                  "created or rotated it; masked (whsec_…last4) in every other. Empty for other kinds.")
    enabled = BooleanField(
        required=False, help_text="Off: nothing is sent here. A permanent delivery failure switches it off; a new "
                                  "target or `enabled: true` switches it on again.")
    disabled_reason = serializers.CharField(read_only=True, help_text="Why delivery switched it off.")
    disabled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True, allow_null=True)

    def to_representation(self, channel: UserChannel) -> dict[str, Any]:
        secret = channel.secret if self.context.get("show_secret") else mask(channel.secret)
        address = channel.address() if channel.kind == "email" else channel.masked_target()
        return {"kind": channel.kind, "target": channel.masked_target(), "address": address,
                "secret": secret if channel.kind == "webhook" else "", "enabled": channel.enabled,
                "disabled_reason": channel.disabled_reason,
                "disabled_at": serializers.DateTimeField().to_representation(channel.disabled_at)
                if channel.disabled_at else None,
                "created_at": serializers.DateTimeField().to_representation(channel.created_at)
                if channel.created_at else None}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind, channel = self.context["kind"], self.instance
        if "target" not in attrs:
            if channel is not None:
                return attrs  # kept
            attrs["target"] = ""
        target = attrs["target"].strip()
        if channel is not None and kind == "slack" and target == channel.masked_target():
            attrs["target"] = channel.target  # a GET's body sent back: the stored URL stays
            return attrs
        problem = target_problem(kind, target)
        if problem:
            raise serializers.ValidationError({"target": [problem]})
        attrs["target"] = target
        return attrs


# --- Notifications ----------------------------------------------------------------------------


class NotificationSerializer(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    job_name = serializers.CharField(source="job.name", read_only=True, allow_null=True, default=None)
    kind = MessageKindChoiceField(read_only=True)
    channel = ChannelChoiceField(read_only=True)
    status = StatusChoiceField(read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "kind", "kind_label", "channel", "status", "job", "job_name", "subject", "attempts",
                  "last_error", "created_at", "next_attempt_at", "sent_at"]
        read_only_fields = fields


class NotificationKindSerializer(serializers.Serializer):
    kind = KindChoiceField()
    label = serializers.CharField()
    urgent = serializers.BooleanField(help_text="Sent at once even to someone who takes a digest.")
    default_channels = serializers.ListField(
        child=ChannelChoiceField(),
        help_text="Where it goes for someone who never chose (the job's owner).")


class CommaSeparatedWidget(QueryArrayWidget):
    """`?status=failed&status=skipped` and `?status=failed,skipped` alike (as the training API's filters)."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        return list(dict.fromkeys(part.strip() for value in values if value for part in value.split(",")
                                  if part.strip()))


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Notification.Status.choices, widget=CommaSeparatedWidget)
    kind = django_filters.MultipleChoiceFilter(choices=Notification._meta.get_field("kind").choices,
                                               widget=CommaSeparatedWidget)
    channel = django_filters.MultipleChoiceFilter(choices=CHANNEL_KINDS, widget=CommaSeparatedWidget)
    job = django_filters.UUIDFilter(field_name="job_id", help_text="The job's id (a UUID).")

    class Meta:
        model = Notification
        fields = ["status", "kind", "channel", "job"]


# --- Views ------------------------------------------------------------------------------------


def channel_kind(kind: str) -> str:
    if kind not in CHANNEL_NAMES:
        raise exceptions.NotFound(f"No channel kind {kind!r}; known: {', '.join(CHANNEL_NAMES)}.")
    return kind


KIND_PARAMETER = OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=CHANNEL_NAMES,
                                  description="The channel kind.")
CHANNEL_CREATED = OpenApiResponse(NotificationChannelSerializer,
                                  description="Created. A webhook's `secret` is in full here, and only here.")


class NotificationSettingsView(APIView):
    """Your own notification settings (the defaults until you save some)."""

    serializer_class = NotificationSettingsSerializer

    @extend_schema(tags=[TAG], responses=NotificationSettingsSerializer,
                   description="Your settings; with none saved yet, the defaults (`is_default`: true).")
    def get(self, request):
        return Response(NotificationSettingsSerializer(NotificationSettings.for_user(request.user)).data)

    @extend_schema(tags=[TAG], request=NotificationSettingsSerializer, responses=NotificationSettingsSerializer,
                   description="Replace your settings. Fields left out keep their value (the defaults at first). "
                               "An unknown kind or channel is a 400 naming it under `kinds`.")
    def put(self, request):
        return self._save(request, partial=False)

    @extend_schema(tags=[TAG], request=NotificationSettingsSerializer, responses=NotificationSettingsSerializer,
                   description="Change some of your settings.")
    def patch(self, request):
        return self._save(request, partial=True)

    def _save(self, request, *, partial: bool) -> Response:
        current = NotificationSettings.for_user(request.user)
        serializer = NotificationSettingsSerializer(current, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        prefs, _ = NotificationSettings.objects.get_or_create(
            user=request.user, defaults={"kinds": normalized_kinds(current.kinds)})
        for name, value in serializer.validated_data.items():
            setattr(prefs, name, value)
        prefs.save()
        return Response(NotificationSettingsSerializer(prefs).data)


class NotificationChannelView(APIView):
    """Where your messages of one channel kind go."""

    serializer_class = NotificationChannelSerializer

    @extend_schema(tags=[TAG], parameters=[KIND_PARAMETER], responses=NotificationChannelSerializer,
                   description="Your channel of this kind. Email always answers (blank target: your account's "
                               "address); Slack and webhook answer 404 until you PUT one.")
    def get(self, request, kind: str):
        kind = channel_kind(kind)
        channel = UserChannel.objects.filter(user=request.user, kind=kind).first()
        if channel is None:
            if kind != "email":
                raise exceptions.NotFound(f"You have no {kind} channel; PUT one first.")
            channel = UserChannel(user=request.user, kind=kind)
        return Response(NotificationChannelSerializer(channel).data)

    @extend_schema(tags=[TAG], parameters=[KIND_PARAMETER], request=NotificationChannelSerializer,
                   responses={200: NotificationChannelSerializer, 201: CHANNEL_CREATED},
                   description="Set the channel's target (and whether it is on). A new webhook gets a whsec_ signing "
                               "secret, in full in this response only. Slack and webhook URLs must be public https "
                               "hosts; a bad one is a 400 naming `target`.")
    def put(self, request, kind: str):
        kind = channel_kind(kind)
        existing = UserChannel.objects.filter(user=request.user, kind=kind).first()
        serializer = NotificationChannelSerializer(existing, data=request.data, context={"kind": kind})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel, created = save_channel(request.user, kind, target=data.get("target"), enabled=data.get("enabled"))
        body = NotificationChannelSerializer(channel, context={"show_secret": created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(tags=[TAG], parameters=[KIND_PARAMETER], responses={204: None},
                   description="Remove the channel (email: back to your account's address). Nothing to remove "
                               "is fine too.")
    def delete(self, request, kind: str):
        kind = channel_kind(kind)
        UserChannel.objects.filter(user=request.user, kind=kind).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RotateWebhookSecretView(APIView):
    serializer_class = NotificationChannelSerializer

    @extend_schema(tags=[TAG], request=None,
                   responses={200: OpenApiResponse(NotificationChannelSerializer,
                                                   description="The new secret, in full here and only here."),
                              404: OpenApiResponse(description="You have no webhook channel.")},
                   description="Replace your webhook's signing secret; the old one stops working at once.")
    def post(self, request):
        channel = UserChannel.objects.filter(user=request.user, kind="webhook").first()
        if channel is None:
            raise exceptions.NotFound("You have no webhook channel; PUT /api/notifications/channels/webhook/ first.")
        rotate_secret(channel)
        return Response(NotificationChannelSerializer(channel, context={"show_secret": True}).data)


class OwnNotifications:
    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        return Notification.objects.filter(recipient=self.request.user).select_related("job")


@extend_schema(tags=[TAG], description="The notifications sent (or to send) to you, newest first.")
class NotificationListView(OwnNotifications, generics.ListAPIView):
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = NotificationFilter
    ordering_fields = ["created_at", "status", "kind", "attempts"]
    ordering = ["-created_at", "-id"]


@extend_schema(tags=[TAG], description="One of your notifications; anyone else's is a 404.")
class NotificationDetailView(OwnNotifications, generics.RetrieveAPIView):
    pass


class NotificationKindsView(APIView):
    serializer_class = NotificationKindSerializer

    @extend_schema(tags=[TAG], responses=NotificationKindSerializer(many=True),
                   description="The kinds of notification, with their labels, in the order the settings page shows.")
    def get(self, request):
        return Response([{"kind": k.value, "label": LABELS[k], "urgent": k in URGENT,
                          "default_channels": list(DEFAULT_KINDS.get(k, []))} for k in Kind])
