"""Executors launch, poll and cancel one attempt of a job's worker. See base.py."""

from .base import Executor, ExecutorError, LaunchResult, PodState, get_executor, register

__all__ = ["Executor", "ExecutorError", "LaunchResult", "PodState", "get_executor", "register"]
