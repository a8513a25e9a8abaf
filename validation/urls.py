"""Routes of the validation app, included at the root by config/urls.py: /api/validation/sets/."""

from rest_framework.routers import SimpleRouter

from . import api

app_name = "validation"

router = SimpleRouter(trailing_slash=True)
router.register("api/validation/sets", api.BenchmarkSetViewSet, basename="benchmark-set")

urlpatterns = router.urls
