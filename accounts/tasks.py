"""Celery tasks of the accounts app: thin wrappers over services."""
