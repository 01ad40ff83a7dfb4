"""Labels of the audit actions accounts writes (collected by core.audit)."""

from django.utils.translation import gettext_lazy as _

LABELS = {
    "auth.login": _("Signed in"),
    "auth.login_failed": _("Sign-in failed"),
    "user.created": _("User created"),
    "user.updated": _("User changed"),
    "user.roles_changed": _("User's roles changed"),
    "user.password_link_sent": _("Password link sent"),
}
LABELS.update(
    {
        "api_key.created": _("API key created"),
        "api_key.revoked": _("API key revoked"),
        "api_key.approve_used": _("API key used to approve or reject"),
    }
)
