"""Celery tasks of the ops app: thin wrappers over services."""
