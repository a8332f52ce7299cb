"""The notification settings form: which kinds a person receives by e-mail (a checkbox per kind)."""
from django import forms

from .kinds import KIND_LABELS, Kind


class NotificationSettingsForm(forms.Form):
    email = forms.MultipleChoiceField(
        label="Send me an e-mail when", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(str(kind), KIND_LABELS[kind]) for kind in Kind],
        error_messages={"invalid_choice": "%(value)s is not a kind of notification"},
        help_text="Unchecked kinds are not sent to you by e-mail. Webhooks are set up by the operators.",
    )
