"""Who may see and act on what.

Everyone signed in reads the catalogue (presets, base models). Jobs, training files and
templates belong to their creator; staff and members of settings.TRAINING_ALL_JOBS_GROUP
(operators) see and act on all of them. Querysets are scoped first (`scope_to_user`), so an
object someone may not see answers 404, never 403, and its existence does not leak; the
object permission below is the second lock on the same door.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.permissions import BasePermission


def sees_everything(user) -> bool:
    """Staff or operator; cached on the user object for the rest of the request."""
    if not user.is_authenticated:
        return False
    cached = getattr(user, "_training_sees_everything", None)
    if cached is None:
        cached = user.is_staff or user.groups.filter(name=settings.TRAINING_ALL_JOBS_GROUP).exists()
        user._training_sees_everything = cached
    return cached


def scope_to_user(queryset: QuerySet, user) -> QuerySet:
    """Rows the user may see: all for staff and operators, else those they created.

    The same rule as TrainingJob.objects.visible_to, for training files and templates.
    """
    return queryset if sees_everything(user) else queryset.filter(created_by=user)


class IsOwnerOrOperator(BasePermission):
    """Object access for the creator, staff and operators."""

    def has_object_permission(self, request, view, obj) -> bool:
        return sees_everything(request.user) or obj.created_by_id == request.user.id
