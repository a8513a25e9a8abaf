"""Routes under /api/training/ (seed 002, section 4). No trailing slashes, as in the brief."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views, webhook

router = SimpleRouter(trailing_slash=False)
router.register("files", views.TrainingFileViewSet, basename="training-file")
router.register("presets", views.PresetViewSet, basename="preset")
router.register("base-models", views.BaseModelViewSet, basename="base-model")
router.register("jobs", views.TrainingJobViewSet, basename="job")
router.register("templates", views.TemplateViewSet, basename="template")

urlpatterns = [
    path("cost-estimate", views.CostEstimateView.as_view(), name="cost-estimate"),
    # Worker reports; signed with the job's secret, not session/token auth (webhook.py).
    path("webhook", webhook.receive_event, name="webhook"),
    *router.urls,
]
