"""Celery app and thin tasks. The pure computation lives in workers.ml."""

from workers.celery import app as celery_app

__all__ = ["celery_app"]
