"""Drop the foreign keys' own indexes that a unique key or another index starting with the
same column already covers (tests/core/test_redundant_indexes.py): they serve no look-up the
other does not, and each costs a write on every insert and on every update that is not HOT.
Only the index goes; Django's AlterField would also drop and re-check the foreign key
constraint, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0004_channel_day"),
        ("channels", "0004_field_labels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "analytics_channelday_channel_id_9318174f"',
                    'CREATE INDEX IF NOT EXISTS "analytics_channelday_channel_id_9318174f" ON "analytics_channelday" ("channel_id")',
                    hints={"model_name": "channelday"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="channelday",
                    name="channel",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="channels.channel",
                        verbose_name="channel",
                    ),
                ),
            ],
        ),
    ]
