"""Every admin page answers for a job in every status, for a superuser and a reviewer, and none deletes."""
import re
from html import unescape

import pytest
from django.contrib import admin

from jobs.models import JobEvent, JobSpec
from jobs.pipelines import Status
from research.models import DataSnapshot, RegistryEntry

from ..builders import ADMIN, counts, job_page, jobs_in_every_status, ran_job, session_client

pytestmark = pytest.mark.django_db

LIST_FILTERS = (
    {}, {"state__status__exact": "waiting_approval"}, {"state__status__exact": "stopped_budget"},
    {"kind__exact": "idea"}, {"kind__exact": "blueprint"}, {"state__waiting_step": "runspec"},
    {"state__waiting_step__isnull": "True"}, {"verdict": "PASS"}, {"verdict": "FAIL"}, {"verdict": "none"},
    {"verdict": "bogus"}, {"submitted_by": "sam"}, {"created_at__gte": "2000-01-01 00:00:00+00:00"}, {"q": "nothing-matches"},
    {"o": "2.-5"}, {"_facets": "True"}, {"_facets": "True", "verdict": "PASS"}, {"state__status__exact": "no-such-status"}, {"unknown_field": "x"},
)
RECORD_LISTS = ("/admin/jobs/jobevent/", "/admin/research/registryentry/", "/admin/research/datasnapshot/")
NAMES = {**{status: f"every-{status}" for status in Status}, "idea_waiting": "every-idea"}


@pytest.fixture
def every_status(people):
    jobs = jobs_in_every_status(people, NAMES)
    jobs["ran"], _ = ran_job(people.submitter, people.superuser, "ran")  # a real dossier, a registry entry
    return jobs


@pytest.mark.parametrize("who", ["superuser", "reviewer"])
def test_no_admin_page_fails_for_any_job_state(people, every_status, who):
    client = session_client(getattr(people, who))
    before = counts()
    for status, job in every_status.items():
        page = client.get(job_page(job))
        assert page.status_code == 200, (status, page.content[:300])
        assert job.job_id in page.content.decode()
    assert client.get(f"{ADMIN}{every_status['done'].job_id}/history/").status_code == 200
    for query in LIST_FILTERS:
        response = client.get(ADMIN, query)
        assert response.status_code in (200, 302), (query, response.status_code)  # 302: the admin's ?e=1
    for url in ("/admin/", "/admin/jobs/", "/admin/research/", *RECORD_LISTS):
        assert client.get(url).status_code == 200, url
    for url, pk in (("/admin/jobs/jobevent/", JobEvent.objects.order_by("id").last().pk),
                    ("/admin/research/registryentry/", RegistryEntry.objects.get().pk),
                    ("/admin/research/datasnapshot/", DataSnapshot.objects.first().pk)):
        assert client.get(f"{url}{pk}/change/").status_code == 200, url
    assert client.get(f"{ADMIN}0123456789ab/change/").status_code == 302  # unknown job: back to the index
    assert client.get(f"{ADMIN}not-an-id/change/").status_code == 302
    assert counts() == before


def test_the_job_page_shows_the_spec_timeline_and_artifact_links(people, every_status):
    client = session_client(people.reviewer)
    job = every_status["ran"]
    page = unescape(client.get(job_page(job)).content.decode())
    assert '"family": "sma_crossover"' in page  # the spec, indented JSON
    shown = re.findall(r'<tr class="event event-([a-z_]+)">', page)
    assert shown == [e.lower() for e in JobEvent.objects.filter(job=job).order_by("seq").values_list("event_type", flat=True)]
    assert shown[0] == "blueprint_submitted" and shown[-1] == "run_completed"  # oldest first, newest last
    assert "user:root" in page and "user:sam" in page  # the actor of each event
    links = [f"/jobs/{job.job_id}/artifacts/outputs/runspec.json", f"/jobs/{job.job_id}/artifacts/dossier/metrics.json"]
    for href in links:
        assert f'href="{href}"' in page
        assert client.get(href).status_code == 200  # the API serves it to the admin's session


def test_records_are_view_only_and_nothing_is_deleted(people, every_status):
    event = JobEvent.objects.order_by("id").first()
    entry = RegistryEntry.objects.get()
    snapshot = DataSnapshot.objects.first()
    job = every_status["done"]
    before = (JobSpec.objects.count(), counts().events, RegistryEntry.objects.count(), DataSnapshot.objects.count())
    client = session_client(people.superuser)
    for base, pk in ((ADMIN, job.job_id), ("/admin/jobs/jobevent/", event.pk),
                     ("/admin/research/registryentry/", entry.pk), ("/admin/research/datasnapshot/", snapshot.pk)):
        assert client.get(f"{base}{pk}/delete/").status_code == 403, base
        assert client.post(f"{base}{pk}/delete/", {"post": "yes"}).status_code == 403, base
        assert client.get(f"{base}add/").status_code == 403, base
        changelist = client.get(base)
        assert "delete_selected" not in dict(changelist.context["action_form"].fields["action"].choices
                                              if changelist.context["action_form"] else {})
        response = client.post(base, {"action": "delete_selected", "index": 0, "_selected_action": [pk]})
        assert response.status_code in (200, 302)
    assert "delete_selected" not in dict(admin.site.actions)
    assert (JobSpec.objects.count(), counts().events, RegistryEntry.objects.count(),
            DataSnapshot.objects.count()) == before
    for model_admin in admin.site._registry.values():
        if model_admin.opts.app_label in ("jobs", "research"):
            request = client.get(ADMIN).wsgi_request
            assert not model_admin.has_delete_permission(request), model_admin
            assert not model_admin.has_change_permission(request), model_admin
            assert not model_admin.has_add_permission(request), model_admin


def test_a_staff_user_without_a_role_sees_no_jobs(people, every_status):
    client = session_client(people.nobody)
    assert client.get(ADMIN).status_code == 403
    assert client.get(job_page(every_status["waiting_approval"])).status_code == 403
    for url in RECORD_LISTS:
        assert client.get(url).status_code == 403
