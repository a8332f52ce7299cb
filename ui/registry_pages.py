"""The registry's trials and the data snapshots as pages: the reads of GET /registry and GET /snapshots, through
the same selectors, the registry with the same keyset cursor."""
from urllib.parse import urlencode

from django import forms
from django.shortcuts import render

from contracts import CONTENT_ID
from jobs import selectors
from research.strategies import FAMILIES

from .selectors import PAGE_SIZE
from .views import reader


class RegistryFilters(forms.Form):
    """The registry's filters as the API takes them: a lineage (its root job's id) and a strategy family."""

    root_job_id = forms.RegexField(
        regex=CONTENT_ID, required=False, max_length=12, label="Lineage (root job id)",
        help_text="12 lowercase hex characters, as in a job's id.",
        error_messages={"invalid": "A job id is 12 lowercase hex characters."},
    )
    family = forms.ChoiceField(
        choices=[("", "Any family"), *((name, name) for name in sorted(FAMILIES))], required=False, label="Family",
        error_messages={"invalid_choice": "%(value)s is not a strategy family."},
    )


HEADLINE = ("sharpe", "total_return", "max_drawdown")


def headline(entry: dict) -> dict:
    """The trial's headline metrics from the stitched out-of-sample ones (`oos` of the run's metrics.json);
    None for each that was not recorded."""
    metrics = entry["metrics"] if isinstance(entry["metrics"], dict) else {}
    oos = metrics.get("oos") if isinstance(metrics.get("oos"), dict) else {}
    return {name: oos.get(name) for name in HEADLINE}


@reader
def registry_list(request):
    form = RegistryFilters(request.GET)
    if not form.is_valid():
        return render(request, "ui/registry.html", {"form": form, "entries": [], "page_size": PAGE_SIZE}, status=400)
    filters = {name: value for name, value in form.cleaned_data.items() if value}
    page = selectors.list_registry(**filters, cursor=request.GET.get("cursor") or None, limit=PAGE_SIZE)
    return render(request, "ui/registry.html", {
        "form": form,
        "filters": filters,
        "entries": [{**entry, "oos": headline(entry)} for entry in page.results],
        "page_size": PAGE_SIZE,
        # The pager keeps the filters: a cursor continues the list it came from.
        "first_page": f"?{urlencode(filters)}" if request.GET.get("cursor") else None,
        "next_page": f"?{urlencode({**filters, 'cursor': page.next_cursor})}" if page.next_cursor else None,
    })


@reader
def snapshot_list(request):
    return render(request, "ui/snapshots.html", {"snapshots": selectors.list_snapshots()})
