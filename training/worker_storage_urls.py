"""Routes under /api/worker/: the worker's storage API and the filesystem blob URLs."""

from django.urls import path

from . import worker_storage as worker_api

app_name = "artifacts-worker"

urlpatterns = [
    path("jobs/<uuid:job_id>/storage/sign", worker_api.sign, name="sign"),
    path("jobs/<uuid:job_id>/storage/checkpoints", worker_api.checkpoints, name="checkpoints"),
    path("jobs/<uuid:job_id>/storage/delete", worker_api.delete, name="delete"),
    path("jobs/<uuid:job_id>/storage/multipart", worker_api.multipart, name="multipart"),
    path("blob/<str:token>", worker_api.blob, name="blob"),
]
