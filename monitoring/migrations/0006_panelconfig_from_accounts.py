"""Panel configuration, taken over from accounts: the same table (`accounts_panelconfig`, created
by accounts' 0002), so this changes the migration state only. The content type follows the
model, so permissions and admin history that point at it stay valid."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def panelconfig_content_type_to(app_label: str, *, from_label: str):
    def move(apps, schema_editor):
        manager = apps.get_model('contenttypes', 'ContentType').objects.using(
            schema_editor.connection.alias
        )
        # post_migrate may already have created the new one: then the old one is left alone.
        if not manager.filter(app_label=app_label, model='panelconfig').exists():
            manager.filter(app_label=from_label, model='panelconfig').update(app_label=app_label)

    return move


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0005_sample_partitioned_by_day'),
        ('accounts', '0005_panelconfig_moves_to_monitoring'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='PanelConfig',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('panels', models.JSONField(default=list)),
                        ('cards', models.JSONField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='panel_config', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'accounts_panelconfig',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            panelconfig_content_type_to('monitoring', from_label='accounts'),
            panelconfig_content_type_to('accounts', from_label='monitoring'),
        ),
    ]
