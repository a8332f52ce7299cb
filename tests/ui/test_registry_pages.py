"""The registry's and the snapshots' pages: who reads them, what they show, the registry's filters and pages, a
bad filter refused without a 500, and as many queries for 2 rows as for 20."""
import re

import pytest

from research.models import DataSnapshot, RegistryEntry
from research.registry import record_trial

from ..api.test_query_counts import queries_for
from ..builders import SNAPSHOT, a_snapshot, done_job_with_run, run_id_of, session_client

pytestmark = pytest.mark.django_db

LINEAGE = "aaaaaaaaaaaa"
OTHER_LINEAGE = "bbbbbbbbbbbb"
TRIAL_ROW = re.compile(r'<tr class="trial">')


def a_trial(n: int, *, root_job_id: str = LINEAGE, family: str = "sma_crossover", verdict: str = "PASS",
            metrics: dict | None = None) -> RegistryEntry:
    """Trial `n` of lineage `root_job_id`, recorded as the registry step records one (what it reads of the runspec)."""
    runspec = {"strategy": {"family": family, "params": {"n": n}}, "data": {"snapshot_id": SNAPSHOT},
               "universe": {"symbols": ["AAA"]}, "policy": {"policy_bundle_id": "default_v2"}}
    job_id = f"{n:012x}"
    return record_trial(job_id=job_id, root_job_id=root_job_id, run_id=f"{n + 4096:012x}", runspec=runspec,
                        verdict=verdict, metrics={"oos": {"sharpe": 0.5, "total_return": 0.1234, "max_drawdown": -0.05}}
                        if metrics is None else metrics)


def trial_rows(response) -> int:
    return len(TRIAL_ROW.findall(response.content.decode()))


def test_readers_see_both_pages_and_anonymous_visitors_sign_in_first_unless_reads_are_public(people, settings):
    a_trial(1)
    urls = ("/ui/registry", "/ui/snapshots", f"/ui/registry?root_job_id={LINEAGE}")
    for person in (people.reviewer, people.submitter, people.nobody):
        assert {url: session_client(person).get(url).status_code for url in urls} == dict.fromkeys(urls, 200)

    anonymous = session_client()
    for url in urls:
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/ui/login?next=/ui/")

    settings.EAM_PUBLIC_READ = True
    assert {url: anonymous.get(url).status_code for url in urls} == dict.fromkeys(urls, 200)


def test_the_registry_shows_a_real_trial_with_its_links_and_headline_metrics(people):
    # given a job the engine took to done: run, gated, registered
    job = done_job_with_run(people.submitter)
    run_id = run_id_of(job)
    entry = RegistryEntry.objects.get(job_id=job.job_id)

    # when a reader opens the registry
    response = session_client(people.nobody).get("/ui/registry")

    # then its row links to the job and the run and shows the out-of-sample metrics, returns in percent
    page = response.content.decode()
    assert response.status_code == 200 and trial_rows(response) == 1
    assert f'href="/ui/jobs/{job.job_id}"' in page and f'href="/ui/runs/{run_id}"' in page
    oos = entry.metrics["oos"]
    assert f"{100 * oos['total_return']:.2f}%" in page and f"{100 * oos['max_drawdown']:.2f}%" in page
    assert f"{oos['sharpe']:.2f}" in page
    assert f"<code>{entry.snapshot_id}</code>" in page and f"<code>{entry.policy_bundle_id}</code>" in page
    assert f'class="verdict verdict-{entry.verdict.lower()}"' in page
    assert '<caption id="registry-caption"' in page and 'scope="col"' in page and 'scope="row"' in page
    assert session_client(people.nobody).get(f"/ui/runs/{run_id}").status_code == 200


def test_the_filters_narrow_the_trials(people):
    a_trial(1)
    a_trial(2, family="ts_momentum")
    a_trial(3, root_job_id=OTHER_LINEAGE)
    client = session_client(people.reviewer)

    assert trial_rows(client.get("/ui/registry")) == 3
    lineage = client.get("/ui/registry", {"root_job_id": LINEAGE})
    assert trial_rows(lineage) == 2 and f"{3:012x}" not in lineage.content.decode()
    family = client.get("/ui/registry", {"root_job_id": LINEAGE, "family": "ts_momentum"})
    assert trial_rows(family) == 1 and f'href="/ui/jobs/{2:012x}"' in family.content.decode()
    empty = client.get("/ui/registry", {"family": "xs_momentum"})
    assert empty.status_code == 200 and trial_rows(empty) == 0 and "No trials here" in empty.content.decode()
    # the submitted empty form is every trial
    assert trial_rows(client.get("/ui/registry", {"root_job_id": "", "family": ""})) == 3


@pytest.mark.parametrize("query", [{"family": "ts_momentum"}, {"root_job_id": "x", "family": "y"}])
def test_the_filter_form_is_labelled_and_keeps_what_was_asked(people, query):
    page = session_client(people.reviewer).get("/ui/registry", query).content.decode()
    for name in ("root_job_id", "family"):
        assert f'<label for="id_{name}">' in page and f'id="id_{name}"' in page
    described = [target for found in re.findall(r'aria-describedby="([^"]+)"', page) for target in found.split()]
    assert described and all(f'id="{target}"' in page for target in described)
    if query["family"] == "ts_momentum":
        assert '<option value="ts_momentum" selected>' in page
    else:
        assert page.count('aria-invalid="true"') == 2 and 'role="alert"' in page and 'value="x"' in page


@pytest.mark.parametrize("query, message", [
    ({"root_job_id": "../x"}, "A job id is 12 lowercase hex characters."),
    ({"root_job_id": "AAAAAAAAAAAA"}, "A job id is 12 lowercase hex characters."),
    ({"family": "a/b"}, "a/b is not a strategy family."),
    ({"cursor": "x"}, "invalid cursor"),
    ({"cursor": "WyJ4Il0"}, "invalid cursor"),
])
def test_a_bad_filter_or_cursor_is_refused_with_a_message(people, query, message):
    a_trial(1)
    before = RegistryEntry.objects.count()

    response = session_client(people.reviewer).get("/ui/registry", query)

    assert response.status_code == 400
    assert message in response.content.decode() and trial_rows(response) == 0
    assert RegistryEntry.objects.count() == before


def test_a_trial_without_out_of_sample_metrics_shows_dashes(people):
    a_trial(1, metrics={})

    page = session_client(people.reviewer).get("/ui/registry").content.decode()

    row = re.search(r'<tr class="trial">.*?</tr>', page, re.S).group(0)
    assert row.count('<td class="number">—</td>') == 3


def test_the_registry_pages_with_the_cursor_and_keeps_the_filters(people):
    for n in range(1, 56):
        a_trial(n, root_job_id=LINEAGE if n % 5 else OTHER_LINEAGE)  # 44 of one lineage, 11 of another
    client = session_client(people.reviewer)

    first = client.get("/ui/registry")
    assert trial_rows(first) == 50
    next_page = re.search(r'<a href="\?cursor=([^"]+)" rel="next">', first.content.decode()).group(1)
    second = client.get("/ui/registry", {"cursor": next_page})
    page = second.content.decode()
    assert trial_rows(second) == 5 and 'rel="next"' not in page and 'href="?">First page' in page
    # oldest first: the second page goes on where the first stopped
    assert f'href="/ui/jobs/{51:012x}"' in page and f'href="/ui/jobs/{50:012x}"' not in page

    for n in range(56, 106):
        a_trial(n, root_job_id=OTHER_LINEAGE)  # 61 of the other lineage in all
    other = client.get("/ui/registry", {"root_job_id": OTHER_LINEAGE})
    assert trial_rows(other) == 50
    link = re.search(r'<a href="\?root_job_id=bbbbbbbbbbbb&amp;cursor=([^"]+)" rel="next">', other.content.decode())
    assert link, "the next page keeps the filter"
    rest = client.get("/ui/registry", {"root_job_id": OTHER_LINEAGE, "cursor": link.group(1)})
    assert trial_rows(rest) == 11 and 'href="?root_job_id=bbbbbbbbbbbb">First page' in rest.content.decode()


def test_the_registry_takes_the_same_queries_for_2_and_20_trials(people):
    client = session_client(people.reviewer)
    for n in range(1, 3):
        a_trial(n)
    few = {url: queries_for(client, url) for url in ("/ui/registry", f"/ui/registry?root_job_id={LINEAGE}")}

    for n in range(3, 21):
        a_trial(n, family="ts_momentum" if n % 2 else "sma_crossover")
    assert trial_rows(client.get("/ui/registry")) == 20
    assert {url: queries_for(client, url) for url in few} == few
    assert few["/ui/registry"] <= 5  # session, user, what the header counts, one page of trials


def test_the_snapshots_show_every_snapshot_and_mark_the_default(people, settings):
    settings.EAM_DEFAULT_SNAPSHOT_ID = SNAPSHOT
    client = session_client(people.nobody)
    few = queries_for(client, "/ui/snapshots")

    a_snapshot("ui_second", span=("2023-01-02", "2023-01-13"), symbols=("AAA", "BBB"))
    response = client.get("/ui/snapshots")
    page = response.content.decode()

    assert response.status_code == 200 and page.count('<tr class="snapshot') == 2
    for snapshot in DataSnapshot.objects.all():
        row = re.search(rf'<tr class="snapshot[^"]*">\s*<th scope="row"><code>{snapshot.snapshot_id}</code>.*?</tr>',
                        page, re.S).group(0)
        assert f'<code title="{snapshot.sha256}">{snapshot.sha256[:12]}…</code>' in row
        assert snapshot.start.isoformat() in row and snapshot.end.isoformat() in row
        assert f"{snapshot.rows:,}" in row and f"{snapshot.bars:,}" in row and snapshot.source in row
        assert ", ".join(snapshot.symbols) in row
        assert ("(default)" in row) == (snapshot.snapshot_id == SNAPSHOT)
    assert '<caption id="snapshots-caption"' in page and 'class="table-scroll"' in page
    assert queries_for(client, "/ui/snapshots") == few
