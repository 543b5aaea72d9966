"""Celery app (workers.celery) and thin tasks (workers.tasks).

Nothing is imported here, so that `workers.ml` (pure computation) loads without
Django or Celery. The Django project imports the Celery app in governance/__init__.py.
"""
