"""Executors launch, poll and cancel one attempt of a job's worker. See base.py.

Importing the package registers every executor kind in `EXECUTORS`: base first, then each
plug-in, which registers itself with `@EXECUTORS.register(...)`.
"""

from . import local, runpod_executor  # noqa: F401  (registers "local" and "runpod")
from .base import EXECUTORS, Executor, ExecutorError, LaunchResult, PodState, get_executor

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "LaunchResult", "PodState", "get_executor"]
