"""/ui/settings/notifications: each person chooses which kinds they receive by e-mail; the page never answers 500.
And the admin of deliveries: operators read every delivery with its attempts; others do not."""
import re

import httpx
import pytest

from notifications.models import Delivery, DeliveryAttempt, NotificationSetting
from notifications.services import run_pass

from ..builders import Reply, session_client, waiting_job

pytestmark = pytest.mark.django_db
URL = "/ui/settings/notifications"


CHECKED = re.compile(rb'<input type="checkbox" name="email" value="(\w+)"[^>]*checked')


def checked(content: bytes) -> set[str]:
    """The kinds the page shows checked."""
    return {value.decode() for value in CHECKED.findall(content)}


def test_everything_is_on_until_a_person_turns_something_off(people):
    client = session_client(people.reviewer)
    response = client.get(URL)
    assert response.status_code == 200
    assert checked(response.content) == {"waiting", "decided", "escalated", "error", "finished"}
    assert b'<label for="id_email_0">' in response.content and b"<legend>" in response.content
    assert b"has no e-mail address" in response.content  # rita has none: say that nothing will arrive

    response = client.post(URL, {"email": ["decided", "error"]})
    assert response.status_code == 302 and response["Location"] == URL
    setting = NotificationSetting.objects.get(user=people.reviewer)
    assert sorted(setting.email_off) == ["escalated", "finished", "waiting"]
    assert checked(client.get(URL).content) == {"decided", "error"}

    client.post(URL, {})  # nothing checked: everything off
    setting.refresh_from_db()
    assert sorted(setting.email_off) == ["decided", "error", "escalated", "finished", "waiting"]
    assert NotificationSetting.objects.count() == 1


def test_an_unknown_kind_is_refused_with_400_and_nothing_written(people):
    client = session_client(people.reviewer)
    response = client.post(URL, {"email": ["waiting", "bogus"]})
    assert response.status_code == 400
    assert b"bogus is not a kind of notification" in response.content and b'role="alert"' in response.content
    assert NotificationSetting.objects.count() == 0


def test_a_post_without_the_csrf_token_is_refused_and_nothing_written(people):
    client = session_client(people.reviewer, enforce_csrf_checks=True)
    response = client.post(URL, {"email": ["waiting"]})
    assert response.status_code == 403
    assert NotificationSetting.objects.count() == 0


def test_anonymous_visitors_are_sent_to_the_login_page(people):
    client = session_client()
    for response in (client.get(URL), client.post(URL, {"email": ["waiting"]})):
        assert response.status_code == 302 and response["Location"].startswith("/ui/login?next=")
    assert NotificationSetting.objects.count() == 0


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_405_not_500(people, method):
    response = getattr(session_client(people.reviewer), method)(URL)
    assert response.status_code == 405
    assert NotificationSetting.objects.count() == 0


@pytest.mark.parametrize("data", [{"email": ""}, {"email": ["x" * 5000]}, {"email": ["waiting", "waiting"]},
                                  {"other": "1"}, {"email": ["\x00"]}])
def test_odd_input_is_never_a_500(people, data):
    response = session_client(people.submitter).post(URL, data)
    assert response.status_code in (302, 400), response.status_code


def test_every_person_opens_the_page(people):
    for user in (people.submitter, people.reviewer, people.operator, people.superuser, people.nobody):
        assert session_client(user).get(URL).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_through_a_real_server_with_the_csrf_cookie(live_server, people):
    # given a reviewer signed in through the login form of the running server
    with httpx.Client(base_url=live_server.url, follow_redirects=False) as browser:
        login = browser.get("/ui/login")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', login.content).group(1).decode()
        signed_in = browser.post("/ui/login", data={"username": "rita", "password": "rita-pass-123",
                                                    "csrfmiddlewaretoken": token, "next": URL})
        assert signed_in.status_code == 302

        # when they turn waiting off with the page's own token
        page = browser.get(URL)
        assert page.status_code == 200
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
        forged = browser.post(URL, data={"email": ["decided"]})  # no token: refused
        assert forged.status_code == 403 and not NotificationSetting.objects.exists()
        saved = browser.post(URL, data={"email": ["decided", "error", "finished", "escalated"],
                                        "csrfmiddlewaretoken": token})

    # then it is stored
    assert saved.status_code == 302
    assert NotificationSetting.objects.get(user=people.reviewer).email_off == ["waiting"]


# -- the admin of deliveries -----------------------------------------------------------------------------------

@pytest.fixture
def staff(people):
    for user in (people.submitter, people.reviewer, people.operator, people.nobody):
        user.is_staff = True
        user.save()
    return people


def test_operators_read_each_delivery_with_its_attempts(staff, hooked):
    hooked.script(Reply(status=500, body=b""))
    waiting_job(staff.submitter, "seen by operators")
    run_pass()
    delivery = Delivery.objects.get(channel="webhook")
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1
    listing, page = "/admin/notifications/delivery/", f"/admin/notifications/delivery/{delivery.id}/change/"
    for user in (staff.operator, staff.superuser):
        client = session_client(user)
        assert client.get(listing).status_code == 200
        response = client.get(page)
        assert response.status_code == 200
        assert b"answered 500" in response.content and b"failed, will retry" in response.content
        assert client.get("/admin/notifications/deliveryattempt/").status_code == 404  # only inline
        assert client.post(page, {}).status_code == 403  # read-only
        assert client.get(f"/admin/notifications/delivery/{delivery.id}/delete/").status_code == 403
    for user in (staff.submitter, staff.reviewer, staff.nobody):
        client = session_client(user)
        assert client.get(listing).status_code == 403
        assert client.get(page).status_code == 403
    assert session_client(staff.operator).get("/admin/notifications/notificationsetting/").status_code == 200
    # every delivery (e-mail delivered, webhook to retry), filtered and searched: never a 500
    operator = session_client(staff.operator)
    pages = [f"/admin/notifications/delivery/{pk}/change/" for pk in Delivery.objects.values_list("id", flat=True)]
    pages += [f"{listing}?{query}" for query in ("status__exact=pending", "status__exact=failed", "kind__exact=waiting",
                                                 "channel__exact=email", f"q={delivery.job_id}", "q=%00", "o=-3")]
    assert {url: operator.get(url).status_code for url in pages} == {url: 200 for url in pages}
    assert Delivery.objects.get(id=delivery.id).attempts == 1  # nothing changed by looking
