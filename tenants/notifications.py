"""E-mails sent by tenant services, in the tenant's default language (the new admin has chosen
none yet)."""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import translation
from django.utils.translation import gettext as _

from tenants.services import OnboardingResult


def send_admin_welcome(result: OnboardingResult) -> None:
    with translation.override(result.tenant.default_language or "de"):
        body = _(
            "Hello,\n\nan account has been created for you as administrator of %(name)s.\n"
            "Choose your password here (the link works once and expires in 3 days):\n\n%(link)s\n\n"
            "After that you will be asked to set up two-factor authentication.\n"
        ) % {"name": result.tenant.name, "link": result.password_link}
        subject = _("Your account for %(name)s") % {"name": result.tenant.name}
    send_mail(
        subject=subject,
        message=body,
        from_email=None,
        recipient_list=[result.admin_user.email],
        fail_silently=True,
    )
