"""Languages (docs/widget.md, "Languages"): which one the chat speaks, the site's words in
it, the page and the socket in it, the offline model's sentences in it, and catalogs that
are complete and compiled."""

from __future__ import annotations

import gettext
import json
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.forms import modelform_factory
from django.utils import translation

from chat import i18n, protocol
from chat.models import Conversation, Site
from chat.services import DEFAULT_SITE_KEY

ROOT = Path(settings.BASE_DIR)
LOCALE = ROOT / "locale"
TRANSLATED = ("de", "fr", "es", "ar")
FULLY_TRANSLATED = ("de", "fr", "es")  # the brief's three; Arabic is complete too today


# --- Choosing the language -------------------------------------------------------------


@pytest.mark.parametrize(
    "tag, ok",
    [
        ("de", True),
        ("fr-CA", True),
        ("zh-Hant-TW", True),
        ("es_ES", True),
        ("", False),
        ("d", False),
        ("deutsch", False),
        ("de-", False),
        ("de DE", False),
        ("<script>", False),
        ("en-" + "a" * 40, False),
    ],
)
def test_a_language_tag_is_checked_for_its_shape(tag, ok):
    assert i18n.is_language_tag(tag) is ok


def test_a_regional_variant_uses_its_language_and_an_unknown_one_is_none():
    assert i18n.supported("de-AT") == "de"
    assert i18n.supported("FR-ca") == "fr"
    assert i18n.supported("es_MX") == "es"
    assert i18n.supported("ja") is None
    assert i18n.supported("not a tag") is None


def test_the_order_explicit_then_site_then_browser_then_accept_language():
    negotiate = i18n.locale_negotiate
    header = "fr-CH, fr;q=0.9, en;q=0.8"
    assert negotiate(requested="de", site_language="es", browser="ar", accept_language=header) == (
        "de"
    )
    assert negotiate(site_language="es", browser="ar", accept_language=header) == "es"
    assert negotiate(browser="ar", accept_language=header) == "ar"
    assert negotiate(accept_language=header) == "fr"
    assert negotiate() == settings.LANGUAGE_CODE == "en"


def test_a_language_the_chat_lacks_falls_through_to_the_next_step():
    negotiate = i18n.locale_negotiate
    assert negotiate(requested="ja", site_language="es") == "es"
    assert negotiate(requested="ja", accept_language="ja, de;q=0.5") == "de"
    assert negotiate(requested="ja", accept_language="ja, *;q=0.5, de;q=0.1") == "en"
    assert negotiate(requested="ja", accept_language="garbage;;q=x") == "en"


def test_arabic_is_right_to_left():
    assert i18n.text_direction("ar") == "rtl"
    assert [i18n.text_direction(code) for code in ("en", "de", "fr", "es")] == ["ltr"] * 4


# --- The site's words -------------------------------------------------------------------


def test_the_site_words_in_a_language_own_words_first_then_stock_ones_translated():
    stock = i18n.site_words(
        greeting="Hi! How can we help?",
        suggestions=["How do I reset my password?", "Where is order 12?"],
        translations={},
        locale="de",
    )
    assert stock.greeting == "Hallo! Wie können wir helfen?"
    # A stock suggestion is translated; the site's own stays as written.
    assert stock.suggestions == ["Wie setze ich mein Passwort zurück?", "Where is order 12?"]
    own = i18n.site_words(
        greeting="Welcome to Acme",
        suggestions=["Track my order"],
        translations={"fr": {"greeting": "Bienvenue chez Acme", "suggestions": ["Suivre"]}},
        locale="fr",
    )
    assert (own.greeting, own.suggestions) == ("Bienvenue chez Acme", ["Suivre"])
    other = i18n.site_words(
        greeting="Welcome to Acme",
        suggestions=["Track my order"],
        translations={"fr": {"greeting": "Bienvenue chez Acme"}},
        locale="es",
    )
    assert (other.greeting, other.suggestions) == ("Welcome to Acme", ["Track my order"])


@pytest.mark.parametrize(
    "value, words",
    [
        (["de"], "one entry per language"),
        ({"xx": {}}, "“xx” is not one of the chat's languages"),
        ({"de": "Hallo"}, "The entry for de must be an object"),
        ({"de": {"greeting": "Hallo", "colour": "red"}}, "not colour"),
        ({"de": {"greeting": "x" * 301}}, "at most 300 characters"),
        ({"de": {"greeting": 5}}, "The greeting for de must be text"),
        ({"fr": {"suggestions": "Bonjour"}}, "The suggestions for fr must be a list"),
        ({"fr": {"suggestions": [""]}}, "each 1 to 200 characters"),
        ({"fr": {"suggestions": ["a"] * 9}}, "at most 8 texts"),
    ],
)
def test_per_language_words_are_refused_in_plain_words(value, words):
    with pytest.raises(ValidationError) as refused:
        i18n.validate_site_translations(value)
    assert words in refused.value.messages[0]


@pytest.mark.django_db
def test_the_admin_form_shows_the_refusal_in_plain_words():
    site = Site.objects.get(key=DEFAULT_SITE_KEY)
    form_class = modelform_factory(Site, fields=("language", "translations"))
    form = form_class(
        data={"language": "", "translations": json.dumps({"ja": {"greeting": "こんにちは"}})},
        instance=site,
    )
    assert not form.is_valid()
    assert "“ja” is not one of the chat's languages" in form.errors["translations"][0]
    form = form_class(data={"language": "xx", "translations": "{}"}, instance=site)
    assert not form.is_valid() and "language" in form.errors
    good = {"de": {"greeting": "Hallo!", "suggestions": ["Rechnung"]}}
    form = form_class(data={"language": "de", "translations": json.dumps(good)}, instance=site)
    assert form.is_valid(), form.errors


# --- session.start's locale on the wire -------------------------------------------------


def _start(**fields):
    return protocol.parse(json.dumps({"type": "session.start", "protocol": 1, **fields}))


def test_session_start_takes_a_locale_and_an_absent_one_is_empty():
    assert _start(locale="de-AT").locale == "de-AT"
    assert _start().locale == ""
    assert _start(locale=None).locale == ""


@pytest.mark.parametrize(
    "locale, words",
    [
        (7, "The locale must be text."),
        (["de"], "The locale must be text."),
        ("de" + "-abc" * 10, "The locale is too long (at most 35 characters)."),
        ("deutsch!", "The locale must be a language tag, like de or fr-CA."),
    ],
)
def test_a_locale_of_the_wrong_type_or_shape_is_a_bad_frame(locale, words):
    with pytest.raises(protocol.FrameError) as refused:
        _start(locale=locale)
    assert (refused.value.code, refused.value.message) == (protocol.ErrorCode.BAD_FRAME, words)


# --- The pages ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_chat_page_follows_accept_language(client):
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5")
    html = page.content.decode()
    assert '<html lang="de" dir="ltr">' in html
    assert "Neue Unterhaltung" in html and "New conversation" not in html
    assert page.headers["Content-Language"] == "de"
    assert "Accept-Language" in page.headers["Vary"]
    strings = _json_script(html, "so-strings")
    assert strings["retry"] == "Erneut versuchen"
    assert strings["typing"] == "{name} schreibt…"
    assert "Wie kann Ihnen unser Team heute helfen?" in html  # the demo site's stock greeting


@pytest.mark.django_db
def test_the_chat_page_in_arabic_is_right_to_left(client):
    html = client.get("/?locale=ar").content.decode()
    assert '<html lang="ar" dir="rtl">' in html
    assert "محادثة جديدة" in html


@pytest.mark.django_db
def test_the_widget_frame_explicit_locale_then_site_then_browser(client):
    site = Site.objects.create(name="Acme", allowed_origins="https://shop.example.com")
    url = f"/widget/{site.key}/"

    def lang(query: str = "", header: str = "de") -> str:
        html = client.get(url + query, HTTP_ACCEPT_LANGUAGE=header).content.decode()
        return re.search(r'<html lang="([^"]+)"', html).group(1)

    assert lang() == "de"  # no choice anywhere: the browser's Accept-Language
    assert lang("?browser=es-MX") == "es"  # the host page's navigator.language
    assert lang("?locale=fr&browser=es") == "fr"  # data-locale
    site.language = "ar"
    site.save()
    assert lang("?browser=es") == "ar"  # the site's setting beats the browser
    assert lang("?locale=fr") == "fr"  # data-locale beats the site's setting
    assert lang("?locale=ja") == "ar"  # one the chat lacks falls through
    assert lang("?locale=" + "x" * 500) == "ar"  # junk is ignored, never an error


@pytest.mark.django_db
def test_the_widget_frame_shows_the_sites_words_for_the_language(client):
    site = Site.objects.create(
        name="Acme",
        greeting="Welcome to Acme",
        suggestions=["Track my order"],
        translations={"es": {"greeting": "Bienvenido a Acme", "suggestions": ["Mi pedido"]}},
    )
    html = client.get(f"/widget/{site.key}/?locale=es").content.decode()
    assert "Bienvenido a Acme" in html
    assert _json_script(html, "so-suggestions") == ["Mi pedido"]
    assert "<title>Chat de Acme</title>" in html
    html = client.get(f"/widget/{site.key}/?locale=fr").content.decode()
    assert "Welcome to Acme" in html
    assert "Écrivez votre message…" in html


def _json_script(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1))


# --- The socket ---------------------------------------------------------------------------


async def _ready(connect, headers=(), **fields) -> dict:
    comm = await connect(headers=list(headers))
    await comm.send_json_to({"type": "session.start", "protocol": 1, "site": "demo", **fields})
    return comm, await comm.receive_json_from(timeout=5)


@pytest.mark.django_db(transaction=True)
async def test_session_ready_echoes_the_locale_used_and_the_conversation_keeps_it(team, connect):
    comm, ready = await _ready(connect, locale="de-CH")
    assert ready["type"] == "session.ready"
    assert ready["locale"] == "de"
    assert (
        ready["greeting"]
        == "Hallo! Ich bin Super Orchestrator. Wie kann Ihnen unser Team heute helfen?"
    )
    assert "Wie setze ich mein Passwort zurück?" in ready["suggestions"]
    conversation = await Conversation.objects.aget(uuid=ready["conversation"])
    assert conversation.locale == "de"
    # The same conversation later, from a French page: it speaks French from then on.
    _, again = await _ready(connect, token=ready["token"], locale="fr")
    assert (again["conversation"], again["locale"]) == (ready["conversation"], "fr")
    await conversation.arefresh_from_db()
    assert conversation.locale == "fr"


@pytest.mark.django_db(transaction=True)
async def test_without_a_locale_the_site_setting_then_the_handshakes_accept_language(team, connect):
    header = [(b"accept-language", b"es-ES,es;q=0.9")]
    _, ready = await _ready(connect, headers=header)
    assert ready["locale"] == "es"
    _, ready = await _ready(connect, headers=header, locale="ja")  # unknown: falls back
    assert ready["locale"] == "es"
    _, ready = await _ready(connect)  # nothing at all: English
    assert ready["locale"] == "en"
    await Site.objects.filter(key=DEFAULT_SITE_KEY).aupdate(language="fr")
    _, ready = await _ready(connect, headers=header)
    assert ready["locale"] == "fr"


@pytest.mark.django_db(transaction=True)
async def test_a_locale_that_is_not_text_is_a_bad_frame_and_closes(team, connect):
    comm, error = await _ready(connect, locale=42)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert error["message"] == "The locale must be text."
    closed = await comm.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4400}


@pytest.mark.django_db(transaction=True)
async def test_the_offline_model_answers_a_german_conversation_in_german(team, connect, settings):
    comm, ready = await _ready(connect, locale="de")
    await comm.send_json_to({"type": "message.send", "id": "c1", "text": "Hallo"})
    done = None
    while done is None:
        frame = await comm.receive_json_from(timeout=10)
        if frame["type"] == "message.done":
            done = frame
    text = done["message"]["text"]
    assert text.startswith("Hallo! Ich bin"), text
    assert "Hello" not in text


def test_the_offline_models_fixed_sentences_follow_the_active_language():
    from orchestrator import action_picking, answers
    from orchestrator.domain.actions import APPROVAL_DECLINED

    declined = json.dumps({"error": APPROVAL_DECLINED["user"]})
    with translation.override("de"):
        assert answers.nothing_new("Billing").startswith(
            "Das ist alles, was die Wissensdatenbank von Billing"
        )
        assert action_picking.reply(None, {}, declined) == (
            "In Ordnung: Ich habe es nicht getan, und es wurde nichts geändert. "
            "Kann ich Ihnen sonst noch helfen?"
        )
    with translation.override("fr"):
        assert action_picking.reply(None, {}, declined).startswith("D’accord : je ne l’ai pas fait")
    assert action_picking.reply(None, {}, declined).startswith("All right: I haven't done it")


# --- The catalogs -------------------------------------------------------------------------


def _po_entries(path: Path) -> dict[tuple[str | None, str], tuple[str, list[str]]]:
    """{(context, msgid): (msgstr, flags)} of a .po file without plurals."""
    entries: dict = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        flags: list[str] = []
        current = None
        for line in block.splitlines():
            if line.startswith("#,"):
                flags += [f.strip() for f in line[2:].split(",")]
            elif line.startswith("#"):
                continue
            elif match := re.match(r'^(msgctxt|msgid|msgstr) (".*")$', line):
                current = match.group(1)
                fields[current] = json.loads(match.group(2))
            elif line.startswith('"') and current:
                fields[current] += json.loads(line)
        if fields.get("msgid"):
            entries[(fields.get("msgctxt"), fields["msgid"])] = (fields.get("msgstr", ""), flags)
    return entries


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_has_a_translation_that_is_not_fuzzy(lang):
    entries = _po_entries(LOCALE / lang / "LC_MESSAGES" / "django.po")
    assert len(entries) > 100
    untranslated = [msgid for key, (msgstr, _) in entries.items() if not msgstr for msgid in [key]]
    fuzzy = [key for key, (_, flags) in entries.items() if "fuzzy" in flags]
    if lang in FULLY_TRANSLATED:
        assert untranslated == [] and fuzzy == []
    for (_, msgid), (msgstr, _) in entries.items():
        for placeholder in re.findall(r"%\(\w+\)s|\{\w+\}", msgid):
            assert not msgstr or placeholder in msgstr, (lang, msgid, msgstr)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_compiled_catalog_is_the_po_file(lang):
    """The committed .mo holds exactly the .po's translations (`make messages` compiles)."""
    folder = LOCALE / lang / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as mo:
        compiled = {k: v for k, v in gettext.GNUTranslations(mo)._catalog.items() if k}
    written = {
        (f"{ctxt}\x04{msgid}" if ctxt else msgid): msgstr
        for (ctxt, msgid), (msgstr, flags) in _po_entries(folder / "django.po").items()
        if msgstr and "fuzzy" not in flags
    }
    assert compiled == written, "Run `make messages` to compile the catalogs."


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_the_catalogs_hold_every_string_of_the_code(tmp_path, settings):
    """makemessages finds no string the .po files lack (run `make messages`, translate)."""
    work = tmp_path / "locale"
    shutil.copytree(LOCALE, work)
    settings.LOCALE_PATHS = [work]
    before = {
        lang: set(_po_entries(work / lang / "LC_MESSAGES" / "django.po")) for lang in TRANSLATED
    }
    # makemessages also rewrites the project's own ./locale (a cwd "locale" directory is
    # one of its locale paths): those files are put back as they were, so a test run
    # leaves the checkout clean.
    real = {p: p.read_bytes() for p in LOCALE.rglob("*.po")}
    try:
        call_command(
            "makemessages",
            locale=list(TRANSLATED),
            ignore_patterns=[
                ".venv",
                "bench",
                "tests",
                "demo",
                "staticfiles",
                "var",
                "docs",
                "locale",
            ],
            verbosity=0,
            no_obsolete=True,
        )
    finally:
        for path, content in real.items():
            path.write_bytes(content)
    for lang in TRANSLATED:
        after = set(_po_entries(work / lang / "LC_MESSAGES" / "django.po"))
        assert after == before[lang], (lang, sorted(after ^ before[lang]))


def test_every_key_the_scripts_ask_for_is_a_page_string_and_every_page_string_is_used():
    scripts = [*(ROOT / "static/superorch/chat").glob("*.js")]
    source = "\n".join(p.read_text(encoding="utf-8") for p in scripts)
    keys = set(re.findall(r"\bt\('(\w+)'", source))  # t('retry')
    for a, b in re.findall(r"\bt\([^()]*\?\s*'(\w+)'\s*:\s*'(\w+)'", source):  # t(x ? 'a' : 'b')
        keys |= {a, b}
    # The tables of keys: CLOSE_REASONS, ERROR_FALLBACK, STATUS_TEXT, OUTCOME_WORDS.
    for table in re.findall(
        r"(?:CLOSE_REASONS|ERROR_FALLBACK|STATUS_TEXT|OUTCOME_WORDS) = \{(.*?)\}", source, re.S
    ):
        keys |= set(re.findall(r":\s*'(\w+)'", table))
    keys.add("error_default")  # ERROR_DEFAULT
    # The loader's words travel in the frame's `loaded` message (widget-bridge.js).
    assert keys - set(i18n.PAGE_STRINGS) == set()
    assert set(i18n.PAGE_STRINGS) - keys == set()


def test_the_js_tests_english_words_are_the_servers():
    fixture = json.loads((ROOT / "tests/js/strings_en.json").read_text(encoding="utf-8"))
    assert fixture == i18n.page_strings("en"), "Regenerate tests/js/strings_en.json."


@pytest.mark.parametrize("lang", FULLY_TRANSLATED)
def test_the_page_strings_are_translated(lang):
    english, words = i18n.page_strings("en"), i18n.page_strings(lang)
    same = {k for k in english if english[k] == words[k]}
    # The same word in both languages, rightly: "Online", "Chat", "Team", "Demo"...
    assert same <= {"status_online", "chat_title", "team_tag", "workflow"}, same


@pytest.mark.django_db
def test_the_status_words_are_in_the_conversations_language():
    from chat import people
    from chat.enums import ConversationStatus

    site = Site.objects.get(key=DEFAULT_SITE_KEY)
    conversation = Conversation.objects.create(
        site=site, token_hash="x" * 64, locale="es", status=ConversationStatus.RESOLVED.value
    )
    words = people.status_payload(conversation=conversation).message
    assert (
        words == "Esta conversación está resuelta. Escribe de nuevo cuando quieras para continuar."
    )
    conversation.locale = ""  # a conversation from before languages: English
    assert people.status_payload(conversation=conversation).message.startswith(
        "This conversation is resolved."
    )


def test_the_domains_marked_sentences_are_in_the_catalogs():
    from django.utils.translation import gettext

    from orchestrator.domain.events import INTERNAL_ERROR, QUEUED_FOR_LATER
    from orchestrator.domain.guardrails import BLOCKED_REPLY
    from orchestrator.domain.tool_names import tool_label

    with translation.override("de"):
        assert gettext(INTERNAL_ERROR).startswith("Bei uns ist etwas schiefgelaufen.")
        assert gettext(QUEUED_FOR_LATER) != QUEUED_FOR_LATER
        assert gettext(BLOCKED_REPLY).startswith("Entschuldigung")
        assert gettext(tool_label("search_knowledge")) == "Wissensdatenbank wird durchsucht"
    assert INTERNAL_ERROR.startswith("Something went wrong")  # the domain itself: English


@pytest.mark.django_db
def test_the_sites_admin_page_explains_data_locale(admin_client):
    site = Site.objects.create(name="Acme", language="de")
    page = admin_client.get(f"/admin/chat/site/{site.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "this site's language (Deutsch)" in text
    assert 'data-locale="de"' in text
    assert 'name="translations"' in text
