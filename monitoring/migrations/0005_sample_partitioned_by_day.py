"""Partition monitoring_sample by UTC day on PostgreSQL (issue 19, item 4); a no-op on SQLite.

The model does not change (Django does not know about partitions), so makemigrations stays
clean. The work is in monitoring.partitions: existing rows are copied into day partitions in
this migration's transaction; a fresh database gets an empty partitioned table with the
partitions for today and the days ahead.
"""

from django.conf import settings
from django.db import migrations


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from monitoring import partitions

    partitions.sample_table_partition(keep_days=settings.RETENTION_DAYS)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from monitoring import partitions

    partitions.sample_table_unpartition()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_member_storage_version_unexported"),
    ]

    operations = [migrations.RunPython(partition, unpartition, elidable=False)]
