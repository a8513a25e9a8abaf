"""Query-string filters for the list endpoints.

Multi-valued filters accept repeated parameters and comma-separated values alike
(`?status=failed&status=cancelled` or `?status=failed,cancelled`).
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django_filters.widgets import QueryArrayWidget

from training.lifecycle import Status
from training.models import JobEvent, TrainingJob


class CommaSeparatedWidget(QueryArrayWidget):
    """QueryArrayWidget splits commas only in plain dicts; request.query_params is a QueryDict,
    so split here: `?status=a,b&status=c` -> [a, b, c]."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]
        return list(dict.fromkeys(part.strip() for value in values if value for part in value.split(",") if part.strip()))


class StrictDateFilter(django_filters.DateFilter):
    """A date filter that refuses a present-but-empty value (`?created_before=`).

    django-filter treats an empty value as "no filter", so a client whose variable was empty
    would silently get every job; the schema says the parameter is a date, so say it is not one.
    """

    @property
    def field(self):
        field = super().field
        field.empty_values = (None,)  # absent is no filter; "" reaches to_python: not a date
        return field


class JobFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, widget=CommaSeparatedWidget)
    preset = django_filters.CharFilter(field_name="preset__slug", help_text="Preset slug.")
    created_after = StrictDateFilter(
        field_name="created_at", lookup_expr="date__gte", help_text="Created on or after this date (YYYY-MM-DD)."
    )
    created_before = StrictDateFilter(
        field_name="created_at", lookup_expr="date__lte", help_text="Created on or before this date (YYYY-MM-DD)."
    )
    created_by = django_filters.CharFilter(method="filter_created_by", help_text="Username or user id.")
    tag = django_filters.CharFilter(field_name="tags__name", help_text="Tag name.")
    client = django_filters.CharFilter()
    project = django_filters.CharFilter()

    class Meta:
        model = TrainingJob
        fields = ["status", "preset", "created_after", "created_before", "created_by", "tag", "client", "project"]

    def filter_created_by(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value.isdigit():
            return queryset.filter(created_by_id=int(value))
        return queryset.filter(created_by__username=value)


class JobEventFilter(django_filters.FilterSet):
    type = django_filters.MultipleChoiceFilter(
        field_name="event_type", choices=JobEvent.Type.choices, widget=CommaSeparatedWidget
    )

    class Meta:
        model = JobEvent
        fields = ["type"]
