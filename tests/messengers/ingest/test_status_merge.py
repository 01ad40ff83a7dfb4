"""Every test of test_status_merge again, with its webhooks posted to the fast ingest path
(messengers.ingest) on a real socket instead of the Django views; the data is committed
(tests.messengers.ingest_support)."""

from __future__ import annotations

from tests.messengers.test_status_merge import *  # noqa: F403  (collected again, here)
