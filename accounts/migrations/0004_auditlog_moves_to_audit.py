"""The audit log's model moves to the audit app. State only: the table `accounts_auditlog`, its
indexes and every row stay exactly where they are (audit's 0001 takes the model over)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_login_throttle'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='AuditLog')],
            database_operations=[],
        ),
    ]
