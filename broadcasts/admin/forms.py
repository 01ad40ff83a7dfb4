"""The compose form of the broadcast admin: texts per language, media, buttons, targeting and
the WhatsApp template, turned into the keyword arguments of broadcast_create / _update."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from broadcasts.models import Broadcast
from broadcasts.selectors import TemplateChoice
from broadcasts.services.templates import broadcast_template_check
from channels.models import Channel
from core.errors import ApplicationError
from subscribers.models import District, Language

MEDIA_LIMITS = {  # what every messenger accepts when it fetches the file by URL
    "image": ({"jpg", "jpeg", "png"}, 5 * 1024 * 1024),
    "video": ({"mp4", "3gp"}, 16 * 1024 * 1024),
}
BUTTONS = 3


def template_param_slots(choices: Sequence[TemplateChoice], saved: Sequence[str]) -> int:
    """How many parameter fields the form has: enough for the template needing the most."""
    return max([len(saved), *(c.parameters for c in choices)])


class BroadcastForm(forms.ModelForm):
    # the approved WhatsApp templates; the admin binds them (BroadcastAdmin.get_form), one query
    template_choices: Sequence[TemplateChoice] = ()

    body_de = forms.CharField(
        label=_("Text (German)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "de"}),
    )
    body_en = forms.CharField(
        label=_("Text (English)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "en"}),
    )
    body_ls = forms.CharField(
        label=_("Text (Leichte Sprache)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "data-preview": "body", "data-lang": "de-ls"}),
    )
    subject = forms.CharField(
        label=_("E-mail subject"),
        required=False,
        max_length=200,
        help_text=_(
            "Also the headline in the public archive and RSS feed. Empty: the first line of the text. "
            "The internal title is never shown publicly."
        ),
    )
    channels = forms.ModelMultipleChoiceField(
        label=_("Channels"), queryset=Channel.objects.filter(is_active=True), widget=forms.CheckboxSelectMultiple
    )
    districts = forms.ModelMultipleChoiceField(
        label=_("Districts"),
        queryset=District.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: every district."),
    )
    languages = forms.MultipleChoiceField(
        label=_("Languages"),
        choices=Language.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: everybody; each person gets the text in their language where there is one."),
    )
    tags_text = forms.CharField(
        label=_("Interests"), required=False, help_text=_("Comma separated; only people with at least one of them.")
    )
    wa_template = forms.ChoiceField(
        label=_("WhatsApp template"),
        required=False,
        help_text=_(
            "Needed for WhatsApp recipients who have not written in the last 24 hours: the approved templates "
            "of your WhatsApp connections."
        ),
    )
    scheduled_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d.%m.%Y %H:%M"],
        help_text=_("In the tenant's time zone. Empty: as soon as it is approved."),
    )

    class Meta:
        model = Broadcast
        fields = ["title", "priority", "media"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(BUTTONS):
            self.fields[f"button_{i}_title"] = forms.CharField(
                label=_("Button %(n)d title") % {"n": i + 1}, required=False, max_length=20
            )
            self.fields[f"button_{i}_url"] = forms.URLField(
                label=_("Button %(n)d link") % {"n": i + 1}, required=False, assume_scheme="https"
            )
        self._template_fields()
        instance = self.instance
        if instance.pk:
            variants = {v.language: v for v in instance.variants.all()}
            for language, field in (("de", "body_de"), ("en", "body_en"), ("de-ls", "body_ls")):
                if language in variants:
                    self.initial[field] = variants[language].body
            subjects = [v.subject for v in variants.values() if v.subject]
            self.initial["subject"] = subjects[0] if subjects else ""
            self.initial["channels"] = list(instance.channels.values_list("pk", flat=True))
            self.initial["districts"] = list(instance.districts.values_list("pk", flat=True))
            self.initial["languages"] = instance.languages
            self.initial["tags_text"] = ", ".join(instance.tags)
            if instance.wa_template_name:
                self.initial["wa_template"] = f"{instance.wa_template_name}|{instance.wa_template_language}"
            for i, value in enumerate(instance.wa_template_params, start=1):
                self.initial[f"wa_param_{i}"] = value
            self.initial["scheduled_at"] = instance.scheduled_at
            for i, button in enumerate((instance.buttons or [])[:BUTTONS]):
                self.initial[f"button_{i}_title"] = button.get("title", "")
                self.initial[f"button_{i}_url"] = button.get("url", "")

    def _template_fields(self) -> None:
        """The template select (the approved templates, plus the saved one if it is not approved
        any more, so the form says so instead of dropping it) and one field per parameter."""
        choices: list[tuple[str, str]] = [("", str(_("– no template –")))]
        choices += [(c.value, f"{c.name} ({c.language})") for c in self.template_choices]
        saved = self.instance.wa_template_name
        if saved and f"{saved}|{self.instance.wa_template_language}" not in {c.value for c in self.template_choices}:
            choices.append(
                (
                    f"{saved}|{self.instance.wa_template_language}",
                    str(
                        _("%(name)s (%(language)s) – not approved")
                        % {"name": saved, "language": self.instance.wa_template_language}
                    ),
                )
            )
        field = self.fields["wa_template"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices
        field.widget.attrs.update({"data-preview": "template", "id": "id_wa_template"})
        for i in range(1, template_param_slots(self.template_choices, self.instance.wa_template_params) + 1):
            self.fields[f"wa_param_{i}"] = forms.CharField(
                label=_("Parameter {{%(n)d}}") % {"n": i},
                required=False,
                max_length=1024,
                widget=forms.TextInput(attrs={"data-param": i}),
            )

    def template_params(self) -> list[str]:
        """The parameters filled in, up to the last one that is not empty."""
        data = self.cleaned_data
        values = [
            (data.get(name) or "").strip()
            for name in sorted(
                (n for n in self.fields if n.startswith("wa_param_")), key=lambda n: int(n.rsplit("_", 1)[1])
            )
        ]
        while values and not values[-1]:
            values.pop()
        return values

    def clean_media(self) -> Any:
        media = self.cleaned_data.get("media")
        if not media or not hasattr(media, "size"):
            return media
        extension = media.name.rsplit(".", 1)[-1].lower() if "." in media.name else ""
        for kind, (extensions, limit) in MEDIA_LIMITS.items():
            if extension in extensions:
                if media.size > limit:
                    raise forms.ValidationError(
                        _("This %(kind)s is %(size).1f MB; messengers accept at most %(limit)d MB.")
                        % {"kind": kind, "size": media.size / 1e6, "limit": limit // (1024 * 1024)}
                    )
                self.media_kind = kind
                return media
        raise forms.ValidationError(_("Upload a JPEG or PNG image, or an MP4 video."))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not any((data.get(field) or "").strip() for field in ("body_de", "body_en", "body_ls")):
            self.add_error("body_de", _("Write the text in at least one language."))
        for field in ("body_de", "body_en", "body_ls"):
            if len(data.get(field) or "") > 4096:
                self.add_error(field, _("Telegram and WhatsApp accept at most 4,096 characters."))
        for i in range(BUTTONS):
            if bool(data.get(f"button_{i}_title")) != bool(data.get(f"button_{i}_url")):
                self.add_error(f"button_{i}_url", _("A button needs both a title and a link."))
        name, _sep, language = (data.get("wa_template") or "").partition("|")
        try:
            broadcast_template_check(name=name, language=language, params=self.template_params())
        except ApplicationError as exc:
            parameter = exc.extra.get("parameter")
            self.add_error(f"wa_param_{parameter}" if parameter else "wa_template", exc.message)
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        buttons = [
            {"title": data[f"button_{i}_title"], "url": data[f"button_{i}_url"]}
            for i in range(BUTTONS)
            if data.get(f"button_{i}_title") and data.get(f"button_{i}_url")
        ]
        subject = data.get("subject", "")
        template_name, _sep, template_language = (data.get("wa_template") or "").partition("|")
        return {
            "title": data["title"],
            "variants": {
                "de": data.get("body_de", ""),
                "en": data.get("body_en", ""),
                "de-ls": data.get("body_ls", ""),
            },
            "subjects": {"de": subject, "en": subject, "de-ls": subject},
            "channels": list(data["channels"]),
            "districts": list(data.get("districts") or []),
            "languages": list(data.get("languages") or []),
            "tags": [t.strip() for t in (data.get("tags_text") or "").split(",") if t.strip()],
            "buttons": buttons,
            "wa_template_name": template_name,
            "wa_template_language": template_language if template_name else "",
            "wa_template_params": self.template_params() if template_name else [],
            "scheduled_at": data.get("scheduled_at"),
            "priority": data.get("priority"),
        }
