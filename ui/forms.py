"""The reviewer's decision forms. They check the shape of what was posted; the services decide."""
import re

from django import forms

from jobs.pipelines import CHECKPOINT_NAMES
from jobs.services import IMPROVEMENTS

# The event contract caps a comment or a reason at this length.
TEXT_LIMIT = 4000


class DecisionForm(forms.Form):
    """Both decisions sit on one page: each form's element ids carry its own prefix so none repeats."""

    id_prefix = "decision"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s")
        super().__init__(*args, **kwargs)

    step = forms.ChoiceField(
        choices=[(name, name) for name in sorted(CHECKPOINT_NAMES)], widget=forms.HiddenInput,
        error_messages={"invalid_choice": "%(value)s is not a checkpoint", "required": "which checkpoint?"},
    )


class ApproveForm(DecisionForm):
    id_prefix = "approve"
    # The sha256 of the artifact the reviewer was shown: approving after it changed is a stale review (409).
    artifact_sha256 = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput)
    comment = forms.CharField(
        label="Comment", required=False, max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional. Recorded with the approval.",
    )


class OverrideForm(DecisionForm):
    id_prefix = "override"
    reason = forms.CharField(
        label="Reason for the override", max_length=TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "An override needs a reason."},
        help_text="Required, and recorded: the checkpoint opens now, without the approvals its rule asks for.",
    )


class RejectForm(DecisionForm):
    id_prefix = "reject"
    reason = forms.CharField(
        label="Reason", max_length=TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "A rejection needs a reason."},
        help_text="Required. Rejecting ends the job.",
    )


PROPOSAL_ID = re.compile(r"[0-9a-f]{12}")


class ProposalIds(forms.MultipleChoiceField):
    """The ids of the checked proposals; whether each is one under review is the service's to say."""

    def valid_value(self, value):
        return bool(PROPOSAL_ID.fullmatch(str(value)))


class ImprovementsApproveForm(ApproveForm):
    """The approval of `improvements`: the proposals accepted, at least one (to accept none is to reject)."""

    accept = ProposalIds(
        label="Accepted proposals",
        error_messages={"required": "Accept at least one proposal, or reject instead.",
                        "invalid_choice": "%(value)s is not a proposal id"},
    )


class RerunForm(forms.Form):
    """Ask for one agent's output again: one form per agent on the job's page, its ids prefixed by the agent."""

    agent_id = forms.CharField(widget=forms.HiddenInput, max_length=64,
                               error_messages={"required": "which agent?"})
    prompt_version = forms.CharField(label="Prompt version", required=False, max_length=64,
                                     help_text="Empty: the version the job pinned.")
    reason = forms.CharField(
        label="Reason", max_length=TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "A rerun needs a reason."}, help_text="Required. Recorded with the request.",
    )

    def __init__(self, *args, agent_id: str = "", **kwargs):
        agent_id = agent_id or (args[0].get("agent_id", "") if args and args[0] is not None else "")
        kwargs.setdefault("auto_id", f"rerun_{agent_id}_%s")
        kwargs.setdefault("initial", {"agent_id": agent_id})
        super().__init__(*args, **kwargs)
        self.agent = agent_id


def approve_form_for(data=None, **kwargs) -> ApproveForm:
    """The approve form for the posted (or waiting) step: the improvements checkpoint's names its proposals."""
    step = (data or {}).get("step") or (kwargs.get("initial") or {}).get("step")
    return (ImprovementsApproveForm if step == IMPROVEMENTS else ApproveForm)(data, **kwargs)
