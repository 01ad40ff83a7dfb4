# TenantRollup moves here from tenants with its rows: the state is created without touching the
# database (the table tenants_tenantrollup already exists), then the table is renamed.
# tenants.0003 removes the model from the tenants state after this.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('tenants', '0002_webhook_routes_due_work_quiet_hours'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='TenantRollup',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('computed_at', models.DateTimeField(verbose_name='computed at')),
                        ('metrics', models.JSONField(default=dict, verbose_name='figures')),
                        ('tenant', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='rollup', to='tenants.tenant')),
                    ],
                    options={
                        'verbose_name': 'tenant figures',
                        'verbose_name_plural': 'tenant figures',
                        'db_table': 'tenants_tenantrollup',
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(
            name='tenantrollup',
            table=None,
        ),
    ]
