"""Every test of test_inbound again, with its webhooks posted to the fast ingest path
(messengers.ingest) on a real socket instead of the Django views; the data is committed
(tests.messengers.ingest_support)."""

from __future__ import annotations

from tests.messengers.test_inbound import *  # noqa: F403  (collected again, here)

# the admin listing logs in on the session's tenant A domain, which this module's tenant is not;
# it has nothing to do with how the webhook arrived
del test_unknown_messages_are_listed_in_the_admin  # noqa: F821
