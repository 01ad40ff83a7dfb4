"""Forms of the public pages and the admin import."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from channels.models import Channel
from subscribers.models import ConsentText, District, Language
from subscribers.services.imports import IMPORT_FILE_TOO_BIG

PUBLIC_LANGUAGES = [(Language.DE, "Deutsch"), (Language.EN, "English")]


class EmailSubscribeForm(forms.Form):
    email = forms.EmailField(label=_("Your e-mail address"), max_length=254)
    channels = forms.MultipleChoiceField(
        label=_("Topics"), widget=forms.CheckboxSelectMultiple, error_messages={"required": _("Choose a topic.")}
    )
    language = forms.ChoiceField(label=_("Language of the e-mails"), choices=PUBLIC_LANGUAGES)
    consent = forms.BooleanField(
        error_messages={"required": _("Please agree to the text above so we may send you e-mails.")}
    )
    poster = forms.CharField(required=False, widget=forms.HiddenInput, max_length=12)
    # Left empty by people; bots fill every field. Hidden by CSS and from screen readers.
    website = forms.CharField(required=False, label=_("Leave this field empty"), max_length=200)

    def __init__(self, *args: Any, channel_choices: list[tuple[str, str]], consent_label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["channels"]).choices = channel_choices
        self.fields["consent"].label = consent_label


class PreferencesForm(forms.Form):
    channels = forms.MultipleChoiceField(label=_("Topics"), required=False, widget=forms.CheckboxSelectMultiple)
    district = forms.ChoiceField(label=_("District"), required=False)
    language = forms.ChoiceField(label=_("Language"), choices=Language.choices)

    def __init__(
        self, *args: Any, channels: list[Channel], districts: list[District], **kwargs: Any
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["channels"]).choices = [(str(c.pk), c.name) for c in channels]
        cast(forms.ChoiceField, self.fields["district"]).choices = [("", _("No district (everything)"))] + [
            (str(d.pk), d.name) for d in districts
        ]
        if not districts:
            self.fields.pop("district")


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV or XLSX file"),
        help_text=_(
            "One person per row. Required columns: consent_source, consent_date and at least one address column "
            "(whatsapp, sms, telegram, email). Optional: name, channels, district, language, tags, external_ref."
        ),
    )
    channels = forms.ModelMultipleChoiceField(
        label=_("Subscribe every row to"),
        queryset=Channel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Added to the channels named in the file's channels column."),
    )
    consent_text = forms.ModelChoiceField(
        label=_("Consent text the people agreed to"),
        queryset=ConsentText.objects.none(),
        required=False,
        help_text=_("Optional; recorded with every imported consent."),
    )
    explicit_consent = forms.BooleanField(
        label=_("Every person in this file gave explicit consent covering political opinion (GDPR Art. 9(2)(a))."),
        required=False,
    )

    def __init__(self, *args: Any, party: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["channels"]).queryset = Channel.objects.filter(
            is_active=True
        ).order_by("position", "name")
        cast(forms.ModelChoiceField, self.fields["consent_text"]).queryset = ConsentText.objects.select_related(
            "channel"
        ).order_by("channel", "language", "-version")
        if not party:
            self.fields.pop("explicit_consent")
        else:
            self.fields["explicit_consent"].required = True

    def clean_file(self) -> Any:
        """Refuse an oversize upload by its size, before anything reads it into memory."""
        upload = self.cleaned_data["file"]
        limit = settings.IMPORT_MAX_FILE_BYTES
        if upload is not None and upload.size is not None and upload.size > limit:
            raise forms.ValidationError(
                str(IMPORT_FILE_TOO_BIG) % {"limit": number_format(limit >> 20, force_grouping=True)}
            )
        return upload
