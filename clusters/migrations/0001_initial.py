"""The KV tabs, taken over from kvmanager: the same table (`kvmanager_kvclustertab`, created by
kvmanager's 0001), so this changes the migration state only. Its content type is renamed so
permissions and admin history that point at it follow the model."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def content_type_to(app_label: str, from_label: str):
    def rename(apps, schema_editor):
        content_type = apps.get_model('contenttypes', 'ContentType')
        db = schema_editor.connection.alias
        moved = content_type.objects.using(db)
        if moved.filter(app_label=app_label, model='kvclustertab').exists():
            return  # already there (post_migrate created it): leave both untouched
        moved.filter(app_label=from_label, model='kvclustertab').update(app_label=app_label)

    return rename


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('kvmanager', '0002_kvclustertab_moves_to_clusters'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='KvClusterTab',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('name', models.CharField(max_length=200)),
                        ('endpoint', models.CharField(max_length=2048)),
                        ('username', models.CharField(blank=True, default='', max_length=255)),
                        ('password_cipher', models.BinaryField(blank=True, default=b'')),
                        ('ca_cert', models.TextField(blank=True, default='')),
                        ('insecure_skip_verify', models.BooleanField(default=False)),
                        ('sort_order', models.IntegerField(default=0)),
                        ('last_status', models.CharField(choices=[('ok', 'Ok'), ('error', 'Error'), ('unknown', 'Unknown')], default='unknown', max_length=16)),
                        ('last_error', models.TextField(blank=True, default='')),
                        ('last_checked_at', models.DateTimeField(blank=True, null=True)),
                        ('failure_count', models.PositiveIntegerField(default=0)),
                        ('created_at', models.DateTimeField()),
                        ('updated_at', models.DateTimeField()),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='kv_tabs', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'kvmanager_kvclustertab',
                        'ordering': ['owner', 'sort_order', 'created_at'],
                        'indexes': [models.Index(fields=['owner', 'sort_order'], name='kv_tab_owner_sort')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_type_to('clusters', from_label='kvmanager'),
            content_type_to('kvmanager', from_label='clusters'),
        ),
    ]
