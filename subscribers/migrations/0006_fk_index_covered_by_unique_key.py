"""Drop the foreign keys' own indexes that a unique key or another index starting with the
same column already covers (tests/core/test_redundant_indexes.py): they serve no look-up the
other does not, and each costs a write on every insert and on every update that is not HOT.
Only the index goes; Django's AlterField would also drop and re-check the foreign key
constraint, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("channels", "0004_field_labels"),
        ("subscribers", "0005_field_labels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "subscribers_consenttext_channel_id_e1690c9e"',
                    'CREATE INDEX IF NOT EXISTS "subscribers_consenttext_channel_id_e1690c9e" ON "subscribers_consenttext" ("channel_id")',
                    hints={"model_name": "consenttext"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="consenttext",
                    name="channel",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="consent_texts",
                        to="channels.channel",
                        verbose_name="channel",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "subscribers_subscription_subscriber_id_cb6308c8"',
                    'CREATE INDEX IF NOT EXISTS "subscribers_subscription_subscriber_id_cb6308c8" ON "subscribers_subscription" ("subscriber_id")',
                    hints={"model_name": "subscription"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="subscription",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="subscriptions",
                        to="subscribers.subscriber",
                        verbose_name="subscriber",
                    ),
                ),
            ],
        ),
    ]
