"""A marker for the domain's sentences that reach a person: `_("...")` returns its text
unchanged (the domain imports no Django), and makes `manage.py makemessages` extract it
(xgettext's default keywords for Python include `_`). Where such a sentence reaches the
user, the caller translates it with Django's gettext in the conversation's language
(chat.turns.runner runs a turn under `translation.override(conversation.locale)`)."""


def _(text: str) -> str:
    return text
