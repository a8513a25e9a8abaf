"""Monitoring: what the metrics of a job say (trends, anomalies, milestones, quality score).

It reacts to jobs through the job-event hook (training.events); nothing below imports it."""
