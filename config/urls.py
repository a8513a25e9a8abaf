from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Artifact routes first: two of them live under api/training/jobs/<id>/ (artifacts/urls.py).
    path("", include("artifacts.urls")),
    path("api/worker/", include("training.worker_storage_urls")),
    path("api/training/", include("api.urls")),
    path("", include("notifications.urls")),
    path("", include("validation.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
