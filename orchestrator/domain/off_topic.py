"""Off-topic use, per site: whether a message that fits none of the agents is declined.

A site that declines off-topic use (chat.Site.off_topic) does not want its support
assistant used for trivia, homework or stories: on a real model every such turn costs a
call and may go where the site never meant it to. Routing already knows when nothing
fits (the turn starts at the fallback agent, for an aside too); this module says which
of those messages are still answered: greetings, thanks, goodbyes, acknowledgements and
questions about the assistant itself, which any front desk answers. Everything else that
reached the fallback agent is declined with the site's sentence, before any model runs.

No Django, no SDK.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .enums import GuardrailName
from .guardrails import Verdict
from .words import _

OFF_TOPIC_KIND = "off_topic"
DEFAULT_REPLY = _(
    "Sorry, I can only help with questions about {site}: your account, our products, "
    "billing and technical problems. What can I do for you?"
)
# Social messages are short: a longer one that starts with "hi" has a request of its own.
SOCIAL_MAX_WORDS = 8

# English, German, French and Spanish: what a front desk answers whatever the topic.
_PHRASE = r"""(?:
        (?:hi|hello|hey|hiya|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day|night)
          |hallo|guten\s+(?:morgen|tag|abend)|servus|moin|bonjour|bonsoir|salut|coucou
          |hola|buen[oa]s\s+(?:d[ií]as|tardes|noches))
        (?:\s+(?:there|all|team|everyone|guys|again|zusammen|à\s+tous|a\s+todos))?
      | (?:how\s+are\s+you|how's\s+it\s+going|what's\s+up|wie\s+geht's|ça\s+va|comment\s+ça\s+va
          |qué\s+tal|cómo\s+estás)
      | (?:(?:thanks?|thank\s+you|thx|ty|cheers|many\s+thanks|danke|vielen\s+dank|merci
          |gracias|muchas\s+gracias)(?:\s+(?:a\s+lot|so\s+much|very\s+much|again|for\s+\w+(?:\s+\w+){0,4}
          |schön|beaucoup|bien))?)
      | (?:(?:ok|okay|k|alright|all\s+right|great|perfect|cool|nice|got\s+it|understood|sounds\s+good
          |super|parfait|d'accord|vale|perfecto|genial)(?:,?\s+(?:thanks?|thank\s+you|danke|merci|gracias))?)
      | (?:bye|goodbye|bye\s+bye|see\s+you(?:\s+later)?|have\s+a\s+(?:nice|good|great)\s+\w+
          |tschüss|auf\s+wiedersehen|au\s+revoir|à\s+bientôt|adiós|adios|hasta\s+luego)
      | (?:who\s+are\s+you|what\s+are\s+you|are\s+you\s+(?:a\s+)?(?:bot|robot|human|real|an?\s+ai)(?:\s+or\s+(?:a\s+)?\w+)?
          |what\s+can\s+you\s+(?:do|help\s+(?:me\s+)?with)|how\s+can\s+you\s+help(?:\s+me)?
          |what\s+do\s+you\s+do|wer\s+bist\s+du|qui\s+êtes-vous|quién\s+eres)
      | (?:that's\s+all|that\s+is\s+all|that's\s+it|for\s+(?:now|today)|please|bitte
          |s'il\s+vous\s+plaît|por\s+favor)
    )"""
# One social phrase or several in a row ("ok thanks, bye", "thanks, that's all for today").
_SOCIAL = re.compile(rf"^{_PHRASE}(?:[\s,]+{_PHRASE})*$", re.IGNORECASE | re.VERBOSE)
_TRIM = re.compile(r"[\s!?.,:;)(*~^_-]+")


def is_social(text: str) -> bool:
    """A greeting, thanks, goodbye, acknowledgement or a question about the assistant."""
    words = text.split()
    if not words or len(words) > SOCIAL_MAX_WORDS:
        return False
    plain = _TRIM.sub(" ", text.replace("\u2019", "'")).strip()
    plain = re.sub(r"[\U0001F300-\U0001FAFF\u2600-\u27BF]", "", plain).strip()
    return bool(plain) and _SOCIAL.match(plain) is not None


@dataclass(frozen=True)
class OffTopicRule:
    """A site's rule: `reply` is what a declined message is answered with."""

    reply: str

    @classmethod
    def for_site(cls, *, decline: bool, reply: str, site_name: str) -> OffTopicRule | None:
        """The rule of a site that declines off-topic use (None: it answers everything)."""
        if not decline:
            return None
        return cls(reply.strip() or DEFAULT_REPLY.format(site=site_name.strip() or "us"))


def off_topic_verdict(
    *, text: str, agent: str, fallback: str | None, wants_person: bool
) -> Verdict:
    """Whether the message a turn starts at `agent` with is declined as off-topic: it fits
    no one (routing sent it to the fallback agent), it is not a request for a person and
    not a social message."""
    started = time.perf_counter()
    blocked = (
        fallback is not None and agent == fallback and not wants_person and not is_social(text)
    )
    return Verdict(
        blocked=blocked,
        guardrail=GuardrailName.OFF_TOPIC,
        kind=OFF_TOPIC_KIND if blocked else "",
        score=1.0 if blocked else 0.0,
        ms=(time.perf_counter() - started) * 1000,
        detail="fits none of the agents' topics" if blocked else "",
    )
