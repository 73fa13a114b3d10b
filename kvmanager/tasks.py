"""Celery tasks of the kvmanager app: thin wrappers over services."""
