"""KV tabs become cluster records (issue 19): every tab is copied into `clusters_cluster` as its
owner's own cluster, with its id as text (the text the password blob is bound to, so the
ciphertext is copied untouched and still decrypts), its one endpoint as the list `endpoints`,
label `environment: other` and not monitored. The content type follows the model, so
permissions and admin history that point at it stay attached."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import clusters.models

COPIED = (
    'name', 'username', 'password_cipher', 'ca_cert', 'insecure_skip_verify', 'sort_order',
    'last_status', 'last_error', 'last_checked_at', 'failure_count', 'created_at', 'updated_at',
)


def tabs_to_clusters(apps, schema_editor):
    tab_model = apps.get_model('clusters', 'KvClusterTab')
    cluster_model = apps.get_model('clusters', 'Cluster')
    db = schema_editor.connection.alias
    cluster_model.objects.using(db).bulk_create(
        [
            cluster_model(
                # str() of the UUID is the hyphenated text the blob's associated data is.
                id=str(tab.id),
                owner_id=tab.owner_id,
                endpoints=[tab.endpoint],
                labels={'environment': 'other'},
                monitored=False,
                **{field: getattr(tab, field) for field in COPIED},
            )
            for tab in tab_model.objects.using(db).all()
        ],
        batch_size=500,
    )


def clusters_to_tabs(apps, schema_editor):
    """Back to tabs: users' own single-endpoint clusters only (shared ones had no tab form)."""
    tab_model = apps.get_model('clusters', 'KvClusterTab')
    cluster_model = apps.get_model('clusters', 'Cluster')
    db = schema_editor.connection.alias
    tabs = []
    for cluster in cluster_model.objects.using(db).exclude(owner=None):
        try:
            tab_id = uuid.UUID(cluster.id)
        except ValueError:
            continue
        tabs.append(
            tab_model(
                id=tab_id,
                owner_id=cluster.owner_id,
                endpoint=(cluster.endpoints or [''])[0],
                **{field: getattr(cluster, field) for field in COPIED},
            )
        )
    tab_model.objects.using(db).bulk_create(tabs, batch_size=500)


def content_type_renamed(old: str, new: str):
    def rename(apps, schema_editor):
        content_type = apps.get_model('contenttypes', 'ContentType')
        types = content_type.objects.using(schema_editor.connection.alias)
        if types.filter(app_label='clusters', model=new).exists():
            return  # already there (post_migrate created it): leave both untouched
        types.filter(app_label='clusters', model=old).update(model=new)

    return rename


class Migration(migrations.Migration):

    dependencies = [
        ('clusters', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Cluster',
            fields=[
                ('id', models.CharField(default=clusters.models.new_cluster_id, editable=False, max_length=64, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=200)),
                ('endpoints', models.JSONField(default=list)),
                ('username', models.CharField(blank=True, default='', max_length=255)),
                ('password_cipher', models.BinaryField(blank=True, default=b'')),
                ('ca_cert', models.TextField(blank=True, default='')),
                ('insecure_skip_verify', models.BooleanField(default=False)),
                ('labels', models.JSONField(blank=True, default=dict)),
                ('monitored', models.BooleanField(default=False)),
                ('sort_order', models.IntegerField(default=0)),
                ('last_status', models.CharField(choices=[('ok', 'Ok'), ('error', 'Error'), ('unknown', 'Unknown')], default='unknown', max_length=16)),
                ('last_error', models.TextField(blank=True, default='')),
                ('last_checked_at', models.DateTimeField(blank=True, null=True)),
                ('failure_count', models.PositiveIntegerField(default=0)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField()),
                ('owner', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='clusters', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['sort_order', 'created_at'],
                'indexes': [models.Index(fields=['owner', 'sort_order'], name='cluster_owner_sort')],
            },
        ),
        migrations.RunPython(tabs_to_clusters, clusters_to_tabs),
        migrations.RunPython(
            content_type_renamed('kvclustertab', 'cluster'),
            content_type_renamed('cluster', 'kvclustertab'),
        ),
        migrations.DeleteModel(name='KvClusterTab'),
    ]
