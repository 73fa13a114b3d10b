"""Panel configuration moves to the monitoring app, next to the panel registry. State only: the
table `accounts_panelconfig` and every row stay exactly where they are (monitoring's 0006 takes
the model over)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_auditlog_moves_to_audit'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='PanelConfig')],
            database_operations=[],
        ),
    ]
