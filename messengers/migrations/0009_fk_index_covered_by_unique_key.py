"""Drop the foreign keys' own indexes that a unique key or another index starting with the
same column already covers (tests/core/test_redundant_indexes.py): they serve no look-up the
other does not, and each costs a write on every insert and on every update that is not HOT.
Only the index goes; Django's AlterField would also drop and re-check the foreign key
constraint, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messengers", "0008_outgoing_webhooks"),
        ("subscribers", "0005_field_labels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_contact_connection_id_9d181162"',
                    'CREATE INDEX IF NOT EXISTS "messengers_contact_connection_id_9d181162" ON "messengers_contact" ("connection_id")',
                    hints={"model_name": "contact"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="contact",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="contacts",
                        to="messengers.connection",
                        verbose_name="connection",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_contact_subscriber_id_6da7d1be"',
                    'CREATE INDEX IF NOT EXISTS "messengers_contact_subscriber_id_6da7d1be" ON "messengers_contact" ("subscriber_id")',
                    hints={"model_name": "contact"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="contact",
                    name="subscriber",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="contacts",
                        to="subscribers.subscriber",
                        verbose_name="subscriber",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_inboundmessage_connection_id_c3789a16"',
                    'CREATE INDEX IF NOT EXISTS "messengers_inboundmessage_connection_id_c3789a16" ON "messengers_inboundmessage" ("connection_id")',
                    hints={"model_name": "inboundmessage"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="inboundmessage",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbound_messages",
                        to="messengers.connection",
                        verbose_name="connection",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_webhookattempt_endpoint_id_72c390f6"',
                    'CREATE INDEX IF NOT EXISTS "messengers_webhookattempt_endpoint_id_72c390f6" ON "messengers_webhookattempt" ("endpoint_id")',
                    hints={"model_name": "webhookattempt"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="webhookattempt",
                    name="endpoint",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempts",
                        to="messengers.webhookendpoint",
                        verbose_name="outgoing webhook",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_webhookdelivery_endpoint_id_77073bf2"',
                    'CREATE INDEX IF NOT EXISTS "messengers_webhookdelivery_endpoint_id_77073bf2" ON "messengers_webhookdelivery" ("endpoint_id")',
                    hints={"model_name": "webhookdelivery"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="webhookdelivery",
                    name="endpoint",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="messengers.webhookendpoint",
                        verbose_name="outgoing webhook",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_webhookevent_connection_id_8ad7298d"',
                    'CREATE INDEX IF NOT EXISTS "messengers_webhookevent_connection_id_8ad7298d" ON "messengers_webhookevent" ("connection_id")',
                    hints={"model_name": "webhookevent"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="webhookevent",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_events",
                        to="messengers.connection",
                        verbose_name="connection",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "messengers_whatsapptemplate_connection_id_d97da78e"',
                    'CREATE INDEX IF NOT EXISTS "messengers_whatsapptemplate_connection_id_d97da78e" ON "messengers_whatsapptemplate" ("connection_id")',
                    hints={"model_name": "whatsapptemplate"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="whatsapptemplate",
                    name="connection",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="templates",
                        to="messengers.connection",
                        verbose_name="connection",
                    ),
                ),
            ],
        ),
    ]
