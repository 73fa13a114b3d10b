"""The KV tab model moves to the clusters app. State only: the table `kvmanager_kvclustertab`,
its index and every row stay exactly where they are (clusters' 0001 takes the model over)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('kvmanager', '0001_kv_cluster_tabs'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='KvClusterTab')],
            database_operations=[],
        ),
    ]
