"""Every index on a tenant's tables costs a write on each insert and on each update that is not
HOT (every status change of a delivery or webhook event). An index whose columns are the leading
columns of another, unconditional index serves no look-up the other does not."""

from __future__ import annotations

from typing import Any

from django.apps import apps

from core.tenancy import connection as db

# our apps' tables (third-party apps' indexes are theirs to choose)
OURS = ("core_", "channels_", "messengers_", "subscribers_", "broadcasts_", "inbox_", "analytics_", "accounts_")


def _indexes(schema: str) -> list[tuple[str, str, list[str], bool]]:
    with db.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname,
                   array(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n),
                   x.indpred IS NULL AND x.indexprs IS NULL
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid
              JOIN pg_class t ON t.oid = x.indrelid
              JOIN pg_namespace n ON n.oid = t.relnamespace
              JOIN pg_am am ON am.oid = i.relam
             WHERE n.nspname = %s AND am.amname = 'btree'
            """,
            [schema],
        )
        return [(table, name, list(columns), plain) for table, name, columns, plain in cursor.fetchall()]


def test_no_index_is_a_prefix_of_another_on_tenant_tables(tenant: Any) -> None:
    indexes = _indexes(tenant.schema_name)
    # tables of our own models (not the many-to-many tables Django makes: their indexes are Django's)
    models = {m._meta.db_table for m in apps.get_models() if not m._meta.auto_created and m._meta.managed}
    assert len(indexes) > 20  # the tenant's tables were found
    redundant = []
    for table, name, columns, plain in indexes:
        if not plain or not table.startswith(OURS) or table not in models:
            continue
        for other_table, other, other_columns, other_plain in indexes:
            if (
                other_table == table
                and other != name
                and other_plain
                and len(other_columns) > len(columns)
                and other_columns[: len(columns)] == columns
            ):
                redundant.append(f"{table}.{name} {columns} (covered by {other} {other_columns})")
    assert not redundant, "\n".join(redundant)
