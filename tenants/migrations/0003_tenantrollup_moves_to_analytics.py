# TenantRollup now belongs to analytics (analytics.0001 adopted and renamed its table, rows
# included); here it only leaves the tenants state. Nothing happens in the database.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0001_initial'),
        ('tenants', '0002_webhook_routes_due_work_quiet_hours'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='TenantRollup')],
            database_operations=[],
        ),
    ]
