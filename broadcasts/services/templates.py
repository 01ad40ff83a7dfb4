"""The WhatsApp template of a broadcast: is the chosen one usable, and are its parameters filled?

The compose form offers the approved templates of the tenant's WhatsApp connections
(broadcasts.selectors.whatsapp_template_choices); this check runs on save, so a template that
was withdrawn meanwhile, a name typed by hand or a wrong number of parameters is refused with
a message that says what to do."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.translation import gettext, gettext_noop, ngettext

from broadcasts.selectors import template_parameter_count
from core.errors import ApplicationError
from messengers.adapters.base import Provider
from messengers.models import WhatsAppTemplate

TEMPLATE_UNKNOWN = gettext_noop(
    "None of your WhatsApp connections has the template “%(name)s” (%(language)s); sync the templates under "
    "Messengers, or choose another."
)
TEMPLATE_NOT_APPROVED = gettext_noop(
    "The WhatsApp template “%(name)s” (%(language)s) is not approved (%(status)s); choose another."
)
PARAMETERS_WITHOUT_TEMPLATE = gettext_noop("Choose the WhatsApp template these parameters belong to.")
PARAMETER_EMPTY = gettext_noop("Fill in parameter %(n)d of the template.")


def broadcast_template_check(*, name: str, language: str, params: Sequence[str]) -> WhatsAppTemplate | None:
    """The template this broadcast may use outside the 24-hour window, or None when none is
    chosen (and no parameters are given). Raises ApplicationError (in the user's language) when
    it does not exist on any of the tenant's WhatsApp connections, is not approved there, or
    its body needs another number of parameters than given."""
    name, language = name.strip(), language.strip()
    if not name:
        if any(p.strip() for p in params):
            raise ApplicationError(gettext(PARAMETERS_WITHOUT_TEMPLATE))
        return None
    found = list(
        WhatsAppTemplate.objects.filter(connection__provider=Provider.WHATSAPP, name=name, language=language).order_by(
            "pk"
        )
    )
    labels = {"name": name, "language": language or "–"}
    if not found:
        raise ApplicationError(gettext(TEMPLATE_UNKNOWN) % labels)
    approved = [t for t in found if t.is_usable]
    if not approved:
        raise ApplicationError(gettext(TEMPLATE_NOT_APPROVED) % {**labels, "status": found[0].status})
    template = approved[0]
    expected = template_parameter_count(template)
    if len(params) != expected:
        raise ApplicationError(
            ngettext(
                "The template “%(name)s” needs %(expected)d parameter; %(given)d filled in.",
                "The template “%(name)s” needs %(expected)d parameters; %(given)d filled in.",
                expected,
            )
            % {"name": name, "expected": expected, "given": len(params)},
            extra={"expected": expected, "given": len(params)},
        )
    for index, value in enumerate(params, start=1):
        if not value.strip():
            raise ApplicationError(gettext(PARAMETER_EMPTY) % {"n": index}, extra={"parameter": index})
    return template
