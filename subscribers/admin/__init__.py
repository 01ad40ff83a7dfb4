"""Tenant admin of subscribers, one module per page: the people list and GDPR actions (people),
the consent ledger and texts (consent), districts and posters (catalogue), imports (imports),
a tenant's wording of citizen texts (texts). Every write goes through subscribers.services.
Importing this package registers them all."""

from subscribers.admin import catalogue, consent, imports, nav, people, texts

__all__ = ["catalogue", "consent", "imports", "nav", "people", "texts"]
