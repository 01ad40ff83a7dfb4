"""Tenant admin for broadcasts, split by subject: the model admins (model_admins), the compose
form (forms), and the workflow buttons, their views and the polled JSON (workflow), the navigation entries (nav). Importing
the package registers the model admins on the tenant site."""

from broadcasts.admin import nav
from broadcasts.admin.forms import BroadcastForm
from broadcasts.admin.model_admins import BroadcastAdmin, DeliveryAdmin, ReviewFilter, ToApproveFilter

__all__ = ["BroadcastAdmin", "BroadcastForm", "DeliveryAdmin", "ReviewFilter", "ToApproveFilter", "nav"]
