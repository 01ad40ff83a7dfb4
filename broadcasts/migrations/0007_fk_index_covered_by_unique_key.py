"""Drop the foreign keys' own indexes that a unique key or another index starting with the
same column already covers (tests/core/test_redundant_indexes.py): they serve no look-up the
other does not, and each costs a write on every insert and on every update that is not HOT.
Only the index goes; Django's AlterField would also drop and re-check the foreign key
constraint, a scan of the whole table under an exclusive lock."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("broadcasts", "0006_error_kind_labels"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "broadcasts_broadcastvariant_broadcast_id_aa7885d6"',
                    'CREATE INDEX IF NOT EXISTS "broadcasts_broadcastvariant_broadcast_id_aa7885d6" ON "broadcasts_broadcastvariant" ("broadcast_id")',
                    hints={"model_name": "broadcastvariant"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="broadcastvariant",
                    name="broadcast",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="variants",
                        to="broadcasts.broadcast",
                        verbose_name="broadcast",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "broadcasts_delivery_broadcast_id_e8d54b7a"',
                    'CREATE INDEX IF NOT EXISTS "broadcasts_delivery_broadcast_id_e8d54b7a" ON "broadcasts_delivery" ("broadcast_id")',
                    hints={"model_name": "delivery"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="broadcast",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="broadcasts.broadcast",
                        verbose_name="broadcast",
                    ),
                ),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "broadcasts_trackedlink_broadcast_id_45d263f0"',
                    'CREATE INDEX IF NOT EXISTS "broadcasts_trackedlink_broadcast_id_45d263f0" ON "broadcasts_trackedlink" ("broadcast_id")',
                    hints={"model_name": "trackedlink"},  # the router: only where the table is
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="trackedlink",
                    name="broadcast",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="links",
                        to="broadcasts.broadcast",
                        verbose_name="broadcast",
                    ),
                ),
            ],
        ),
    ]
