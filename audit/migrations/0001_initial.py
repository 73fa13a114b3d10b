"""The audit log, taken over from accounts: the same table (`accounts_auditlog`, created by
accounts' 0001), so this changes the migration state only. Its content type is renamed so
permissions and admin history that point at it follow the model."""

from django.db import migrations, models


def content_type_to(app_label: str, from_label: str):
    def rename(apps, schema_editor):
        content_type = apps.get_model('contenttypes', 'ContentType')
        db = schema_editor.connection.alias
        if content_type.objects.using(db).filter(app_label=app_label, model='auditlog').exists():
            return  # already there (post_migrate created it): leave both untouched
        content_type.objects.using(db).filter(app_label=from_label, model='auditlog').update(
            app_label=app_label
        )

    return rename


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0004_auditlog_moves_to_audit'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AuditLog',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('timestamp', models.DateTimeField(db_index=True)),
                        ('username', models.CharField(blank=True, default='', max_length=150)),
                        ('operation', models.CharField(db_index=True, max_length=64)),
                        ('target', models.CharField(blank=True, default='', max_length=1024)),
                        ('params', models.TextField(blank=True, default='')),
                        ('result', models.TextField(blank=True, default='')),
                        ('duration_ms', models.PositiveIntegerField(default=0)),
                        ('success', models.BooleanField(default=True)),
                        ('client_ip', models.GenericIPAddressField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'accounts_auditlog',
                        'ordering': ['-timestamp', '-id'],
                        'indexes': [models.Index(fields=['operation', 'timestamp'], name='audit_op_ts')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            content_type_to('audit', from_label='accounts'),
            content_type_to('accounts', from_label='audit'),
        ),
    ]
