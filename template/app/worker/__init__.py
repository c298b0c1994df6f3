"""Background work on taskiq: the broker, the jobs, the schedule and the worker's health.

Jobs call services, never routes. The engine-specific code is in `broker.py`; the jobs
in `jobs.py` are plain async functions over a `JobContext`. The delivery guarantee and
the dead letters: README.md, "Background work"; why taskiq: the template's
docs/background-work.md.
"""
