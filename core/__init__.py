"""The shared layer: what every app may use and nothing in it knows about jobs.

The registry helper, storage and URL signing, API errors. It imports only Django and the
standard library (and `gpu_worker` for the signing scheme shared with the worker).
"""
