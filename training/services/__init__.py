"""Cross-cutting operations, named with verbs. Views, tasks and commands call these.

- jobs.py: create, start, cancel, retry, delete (user actions)
- datasets.py: ingest and validate uploaded training files
- estimates.py: the cost/duration estimate for a configuration (wraps training.estimate)
- execution.py: launch an attempt, poll, recover, stop (called by Celery tasks)
- ingest.py: verify and apply worker reports (the webhook)
"""
