"""Cross-cutting operations, named with verbs. Views, tasks and commands call these.

- jobs.py: create, start, cancel, retry, delete (user actions)
- datasets.py: ingest and validate uploaded training files
- estimates.py: the cost/duration estimate for a configuration (wraps training.estimate)
- worker_config.py: the worker's configuration for an attempt
- launching.py, polling.py, recovery.py, stopping.py: run an attempt (each with its Celery task)
- billing.py: what attempts cost, and the job's total
- ingest.py: verify and apply worker reports (the webhook)
"""
