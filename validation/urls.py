"""Routes of the validation app, included at the root by config/urls.py: /api/validation/sets/ and
the report's share links, /share/reports/<token>/ (share.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, share

app_name = "validation"

router = SimpleRouter(trailing_slash=True)
router.register("api/validation/sets", api.BenchmarkSetViewSet, basename="benchmark-set")

urlpatterns = [
    *router.urls,
    path("api/training/jobs/<uuid:job_id>/report-shares", api.JobReportSharesView.as_view(), name="job-report-shares"),
    path("api/validation/report-shares/<int:pk>/revoke", api.ReportShareRevokeView.as_view(), name="report-share-revoke"),
    path("api/training/jobs/<uuid:job_id>/review", api.JobReviewView.as_view(), name="job-review"),
    path("api/validation/reviews", api.ReviewQueueView.as_view(), name="review-queue"),
    path("share/reports/<str:token>/", share.share_view, name="share"),
    path("share/reports/<str:token>/report.pdf", share.share_pdf, name="share-pdf"),
]
