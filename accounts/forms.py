from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts import roles
from accounts.models import User


class StaffUserForm(forms.ModelForm):
    roles = forms.MultipleChoiceField(
        label=_("Roles"),
        choices=[(r, roles.ROLE_LABELS[r]) for r in roles.ROLES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Administrators and approvers must set up two-factor authentication before using the admin."),
    )

    class Meta:
        model = User
        fields = ["username", "email", "first_name", "last_name", "language", "is_active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        if self.instance.pk:
            self.fields["username"].disabled = True
            self.initial["roles"] = list(
                self.instance.groups.filter(name__in=roles.ROLES).values_list("name", flat=True)
            )
