"""Drop the foreign keys' own indexes that a unique key or another index starting with the
same column already covers (tests/core/test_redundant_indexes.py): they serve no look-up the
other does not, and each costs a write on every insert and on every update that is not HOT.
Only the index goes; Django's AlterField would also drop and re-check the foreign key
constraint, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0003_conversation_figures"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "inbox_conversation_assignee_id_4bf0d3a6"',
                    'CREATE INDEX IF NOT EXISTS "inbox_conversation_assignee_id_4bf0d3a6" ON "inbox_conversation" ("assignee_id")',
                    hints={"model_name": "conversation"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="assignee",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="assigned to",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "inbox_entry_conversation_id_48157033"',
                    'CREATE INDEX IF NOT EXISTS "inbox_entry_conversation_id_48157033" ON "inbox_entry" ("conversation_id")',
                    hints={"model_name": "entry"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="entry",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="inbox.conversation",
                    ),
                ),
            ],
        ),
    ]
