"""Widget sites: allowed origins, the frame page's CSP, identity verification, site isolation."""

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat.models import Conversation, Site
from chat.origins import frame_ancestors, parse_origins, validate_origins
from chat.services import (
    IdentityError,
    conversation_open,
    identity_signature,
    identity_verify,
)
from tests.chat.test_consumers import (  # noqa: F401  (an autouse fixture and helpers)
    _no_turn_outlives_the_test,
    expect_close,
    recv,
    send,
    start,
)

SECRET = "s3cret-for-tests"


@pytest.fixture
def shop(db):
    return Site.objects.create(
        key="shop",
        name="Shop",
        allowed_origins="https://shop.example.com\nhttps://*.example.org",
        identity_secret=SECRET,
    )


# --- origins ------------------------------------------------------------------------------


def test_origins_parse_and_validate():
    assert parse_origins(
        " https://A.example.com/ \n\nhttps://a.example.com, http://x.test:8001"
    ) == [
        "https://a.example.com",
        "http://x.test:8001",
    ]
    validate_origins("https://shop.example.com\nhttps://*.example.org\nhttp://127.0.0.1:8001")
    for bad in [
        "*",
        "https://*",
        "shop.example.com",
        "https://shop.example.com/path",
        "ftp://x.com",
        "javascript:alert(1)",
    ]:
        with pytest.raises(ValidationError):
            validate_origins(bad)
    assert frame_ancestors([]) == "'self'"


# --- the frame page ---------------------------------------------------------------------


def test_frame_page_allows_only_the_sites_origins_as_ancestors(client, shop, team):
    response = client.get(reverse("chat:widget-frame", args=["shop"]))
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com https://*.example.org" in csp
    assert "X-Frame-Options" not in response.headers
    assert b'data-site="shop"' in response.content


def test_frame_page_with_no_origins_frames_nowhere_else(client, team):
    Site.objects.create(key="bare", name="Bare")
    csp = client.get(reverse("chat:widget-frame", args=["bare"])).headers["Content-Security-Policy"]
    assert csp.endswith("frame-ancestors 'self'")


def test_frame_page_of_unknown_or_disabled_site_is_404(client, shop):
    assert client.get(reverse("chat:widget-frame", args=["nope"])).status_code == 404
    shop.enabled = False
    shop.save()
    assert client.get(reverse("chat:widget-frame", args=["shop"])).status_code == 404


def test_loader_is_served_as_a_static_file(client):
    from django.contrib.staticfiles import finders

    assert finders.find("superorch/widget.js")


# --- identity -----------------------------------------------------------------------------


def test_identity_verification(shop):
    good = {"id": "u-1", "hash": identity_signature(secret=SECRET, user_id="u-1")}
    assert identity_verify(site=shop, user=good) is True
    assert (
        identity_verify(site=shop, user={"id": "u-1", "name": "Ada"}) is False
    )  # unsigned, allowed
    with pytest.raises(IdentityError):
        identity_verify(site=shop, user={"id": "u-1", "hash": "0" * 64})  # forged
    with pytest.raises(IdentityError):
        identity_verify(site=shop, user={"id": "u-2", "hash": good["hash"]})  # another user's hash
    with pytest.raises(IdentityError):
        identity_verify(site=shop, user={"id": "u-1", "hash": "é" * 64})  # not even hex
    shop.require_verified = True
    with pytest.raises(IdentityError):
        identity_verify(site=shop, user={"id": "u-1", "name": "Ada"})
    with pytest.raises(IdentityError):
        identity_verify(site=shop, user={})


def test_a_verified_user_finds_their_conversation_from_any_device(shop):
    user = {"id": "u-1", "name": "Ada"}
    first, token, _ = conversation_open(site=shop, token=None, user=user, context={}, verified=True)
    assert first.user_verified
    # Another device: no token, same verified identity.
    again, other_token, resumed = conversation_open(
        site=shop, token=None, user=user, context={}, verified=True
    )
    assert resumed and again.pk == first.pk and other_token != token
    # Someone holding that token but not verified as u-1 gets a new, empty conversation.
    stranger, _, resumed = conversation_open(site=shop, token=other_token, user={}, context={})
    assert not resumed and stranger.pk != first.pk
    other_user, _, resumed = conversation_open(
        site=shop, token=other_token, user={"id": "u-2"}, context={}, verified=True
    )
    assert not resumed and other_user.pk != first.pk


def test_identifying_claims_an_anonymous_conversation(shop):
    anonymous, token, _ = conversation_open(site=shop, token=None, user={}, context={})
    claimed, _, resumed = conversation_open(
        site=shop, token=token, user={"id": "u-9"}, context={}, verified=True
    )
    assert resumed and claimed.pk == anonymous.pk
    assert Conversation.objects.get(pk=anonymous.pk).user_id == "u-9"


def test_admin_site_page_shows_the_snippet(admin_client, shop):
    page = admin_client.get(reverse("admin:chat_site_change", args=[shop.pk])).content.decode()
    assert 'data-site="shop"' in page and "/static/superorch/widget.js" in page
    assert "createHmac" in page and "hmac.new" in page


def test_admin_rejects_a_bad_origin(admin_client, shop):
    data = {
        "name": "Shop",
        "key": "shop",
        "enabled": "on",
        "allowed_origins": "*",
        "identity_secret": SECRET,
        "greeting": "Hi",
        "suggestions": "[]",
        "accent_color": "#123456",
        "theme": "auto",
        "position": "right",
        "language": "en",
    }
    response = admin_client.post(reverse("admin:chat_site_change", args=[shop.pk]), data)
    assert response.status_code == 200 and "are not origins" in response.content.decode()


# --- the protocol -------------------------------------------------------------------------

pytestmark_async = pytest.mark.django_db(transaction=True)


@pytestmark_async
async def test_forged_identity_is_refused_with_4401(team, connect, shop):
    comm = await connect()
    await send(
        comm, {"type": "session.start", "site": "shop", "user": {"id": "u-1", "hash": "ab" * 32}}
    )
    error = await recv(comm)
    assert error["type"] == "error" and error["code"] == "identity_invalid"
    assert "verify" in error["message"]
    await expect_close(comm, 4401)
    assert await sync_to_async(Conversation.objects.count)() == 0


@pytestmark_async
async def test_unverified_visitor_is_refused_when_the_site_requires_verification(
    team, connect, shop
):
    shop.require_verified = True
    await shop.asave()
    comm = await connect()
    await send(
        comm, {"type": "session.start", "site": "shop", "user": {"id": "u-1", "name": "Ada"}}
    )
    assert (await recv(comm))["code"] == "identity_invalid"
    await expect_close(comm, 4401)
    comm = await connect()
    signed = {"id": "u-1", "hash": identity_signature(secret=SECRET, user_id="u-1")}
    ready = await start(comm, site="shop", user=signed)
    assert ready["type"] == "session.ready"


@pytestmark_async
async def test_a_token_from_site_a_on_site_b_reveals_nothing(team, connect, shop):
    comm = await connect()
    ready_a = await start(comm, site="demo")
    await send(comm, {"type": "message.send", "id": "c-1", "text": "secret question"})
    while (await recv(comm))["type"] != "turn.done":
        pass
    comm_b = await connect()
    ready_b = await start(comm_b, site="shop", token=ready_a["token"])
    assert ready_b["conversation"] != ready_a["conversation"]
    assert ready_b["token"] != ready_a["token"] and ready_b["messages"] == []


@pytestmark_async
async def test_context_update_replaces_the_page_context(team, connect):
    comm = await connect()
    ready = await start(comm, context={"page": "/pricing"})
    await send(comm, {"type": "context.update", "context": {"page": "/checkout"}})
    await send(comm, {"type": "ping"})
    assert (await recv(comm))["type"] == "pong"
    conversation = await Conversation.objects.aget(uuid=ready["conversation"])
    assert conversation.page_context == {"page": "/checkout"}
    await send(comm, {"type": "context.update", "context": "nope"})
    assert (await recv(comm))["code"] == "bad_frame"
