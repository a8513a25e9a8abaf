"""Customer-facing download routes, included from config/urls.py before api/training/."""

from django.urls import path

from . import views

urlpatterns = [
    path("api/training/jobs/<uuid:job_id>/artifacts", views.ArtifactListView.as_view(),
         name="job-artifacts"),
    path("api/training/jobs/<uuid:job_id>/download/<str:kind>", views.DownloadLinkView.as_view(),
         name="job-download"),
    # The signed link itself: no session, valid ARTIFACT_URL_TTL_SECONDS, counted and audited.
    path("api/artifacts/<uuid:job_id>/<str:token>", views.serve_download, name="artifact-download"),
]
