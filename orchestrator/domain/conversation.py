"""What routing knows of a conversation, and how a message reads within it.

Pure functions over plain data (no ORM, no model call): the conversation's state as
routing needs it (who answers now, which specialist it was with before an aside, the
user's earlier messages, what the agent last said), whether a message asks for a
person, and whether it reads as a follow-up. The routing policy
(routing_policy.decide) combines these with the router's scores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# How many earlier user messages routing keeps (it reads the last one with the message).
EARLIER_MESSAGES = 3


@dataclass(frozen=True)
class Conversation:
    """The conversation before the message being routed."""

    active: str | None = None  # who answered last (the conversation's active agent)
    previous_specialist: str | None = None  # the last specialist who answered, before any aside
    earlier: tuple[str, ...] = ()  # the user's earlier messages, oldest first
    agent_said: str = ""  # the last reply

    @property
    def agent_asked(self) -> bool:
        """The last reply ended on a question: a short answer to it is a follow-up."""
        return self.agent_said.rstrip().endswith("?")


def conversation_from_history(
    history: Iterable[Mapping[str, str]], *, active: str | None, specialists: Iterable[str]
) -> Conversation:
    """The conversation from a turn's history ({"role", "content", "agent"?}, oldest first,
    ending with the message being routed, which is left out). `specialists`: the slugs of
    the team's specialists; the newest assistant message one of them wrote names the
    specialist an aside returns to."""
    rows = list(history)
    if rows and rows[-1].get("role") == "user":
        rows = rows[:-1]  # the message being routed
    specialist_slugs = set(specialists)
    users = [r.get("content", "") for r in rows if r.get("role") == "user"]
    replies = [r for r in rows if r.get("role") == "assistant"]
    previous = next(
        (r["agent"] for r in reversed(replies) if r.get("agent") in specialist_slugs), None
    )
    return Conversation(
        active=active,
        previous_specialist=previous,
        earlier=tuple(users[-EARLIER_MESSAGES:]),
        agent_said=replies[-1].get("content", "") if replies else "",
    )


# --- asking for a person ------------------------------------------------------------------
# Checked without a model call. A person named next to a way of reaching them ("talk to a
# human", "get me a real agent", "escalate this to a manager", "have someone call me").
_PERSON = (
    r"(?:human(?:\s+being)?|humans|(?:real|actual|live)\s+(?:person|agent|one|human)|person|"
    r"people|someone|somebody|anyone|agent|representative|rep|operator|manager|supervisor|"
    r"staff|engineers?|sales\s*(?:person|team|rep)?|support\s+(?:person|team|staff))"
)
_REACH = r"(?:talk|speak|chat|connect|transfer|put\s+me\s+through|escalate|pass|hand|reach|call)"
_PERSON_PATTERNS = tuple(
    re.compile(p)
    for p in (
        rf"\b{_REACH}\w*(?:\s+(?:me|this|it|us))?(?:\s+(?:to|with)|\s+through\s+to)\s+(?:\w+\s+){{0,4}}?{_PERSON}\b",
        r"\b(?:want|need|get|prefer|give|find|like)\s+(?:me\s+)?(?:a\s+|an\s+|to\s+)?(?:real\s+|actual\s+|live\s+)?(?:human|(?:real|actual|live)\s+(?:person|agent|one))\b",
        r"\b(?:get|find)\s+(?:me\s+)?(?:someone|somebody)\b",
        r"\b(?:call|phone|ring)\s+me\b|\bphone\s+call\b|\bcall\s+with\s+(?:someone|somebody|a\s+person)\b",
        r"\b(?:a|any)\s+human\s+(?:look|check|help|answer|see)\b",
        r"\bhuman\s+agent\b|\bsales\s*person\b",
        # "I want a manager", "I demand to speak to your supervisor"
        r"\b(?:want|need|demand|get\s+me)\s+(?:a\s+|an\s+|the\s+|your\s+)?"
        r"(?:manager|supervisor|representative|operator)\b",
        # "is there a human I can chat with?", "someone we could talk to"
        r"\b(?:human|real\s+person|person|someone|somebody|manager|supervisor)\s+"
        r"(?:i|we)\s+(?:can|could)\s+(?:talk|speak|chat)\b",
    )
)
# "are you a real person?" asks what the assistant is, not for a person.
_IDENTITY = re.compile(
    r"^\W*(?:are|r)\s+(?:you|u)\b|\b(?:is\s+this|am\s+i\s+(?:talking|speaking|chatting)\s+(?:to|with))\b"
)


def wants_person(text: str) -> bool:
    """The message asks to be put through to a person (support staff, a manager)."""
    lowered = " ".join(text.lower().split())
    if _IDENTITY.search(lowered) and not re.search(r"\b(?:want|need|let me|can i)\b", lowered):
        return False
    return any(p.search(lowered) for p in _PERSON_PATTERNS)


# --- follow-ups ---------------------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Words that carry no topic of their own: what is left of a message without them is what
# the router can route on.
_FILLER_WORDS = """
    a an the and or but if of to in on at for with by from is are was were be been being i
    me my we our you your it its it's this that these those do does did can could would
    should will shall may might must have has had am so just please there what how why
    when where who which not no yes as up out about into than then too very ok okay yeah
    yep yup nope nah sure also still again already tried same one ones much many more any
    anything else other thing things he she him her his they them their i'm we're it's
    that's there's don't doesn't didn't can't won't isn't get got go going now right well
    oh hm hmm um like really actually
"""
_FILLER = frozenset(_FILLER_WORDS.split())
# A message that answers the agent ("yes I'm signed in on both", "no, same account") ...
_YES_NO = re.compile(r"^\W*(?:yes|yeah|yep|yup|no|nope)\b")
# ... or reports on the problem ("still nothing", "it says 10 users", "only on that one
# project") ...
_ANSWERS = re.compile(
    r"^\W*(?:still|same|tried|done|already|only|it|it's|its|they|they're|he|she|that|"
    r"that's|this)\b"
)
# ... or says something about the user's side in a few words ("we're on business") ...
_ABOUT_US = re.compile(r"^\W*(?:we|we're|we've|i|i'm|i've|our|my)\b")
# ... or that goes on from it ("and members?", "so it's prorated?"), which may also
# bring a new topic ("and can I also get a refund?").
_CONTINUES = re.compile(r"^\W*(?:and|or|but|so|then|what about|how about|what if)\b")
# Words that announce another subject ("different question, ...", "also, ...", "unrelated,
# but ..."): the message is read on its own, not joined to the previous one.
_NEW_TOPIC = re.compile(
    r"^\W*(?:(?:totally|completely|slightly|kind\s+of|somewhat)\s+)?(?:also|unrelated|btw|by the way|side (?:note|question)|one more thing|actually|"
    r"another (?:question|thing)|(?:a )?(?:different|separate|other) (?:question|topic|thing|"
    r"issue|problem)|in the meantime|while i have you|oh and|and also|next question)\b"
)
# Words in front that change nothing ("ok so when does it go away?").
_LEAD = re.compile(r"^\W*(?:(?:ok|okay|alright|right|well|hm+|um+|sorry|oh)\b[\s,.!]*)+")
# Codes and versions the user reads out ("error 409", "version 5.4").
_CODE = re.compile(r"\b(?:error|code|status|version|v)\s*[a-z0-9._-]*\d|^\W*[a-z]*\d[\w.-]*\W*$")
# Social words: "thanks, bye" is small talk, not a follow-up to the problem.
_SOCIAL_WORDS = """
    thanks thank thx thnx thanx ty cheers bye goodbye hi hello hey great cool perfect
    awesome nice lol haha ok okay k alright good morning evening night day have all today
    that's for you so much lot appreciated appreciate helpful help needed best anyway
    gracias merci danke brilliant excellent wonderful amazing sweet fine
"""
_SOCIAL = frozenset(_SOCIAL_WORDS.split())


# A message that ends the conversation ("k that worked. bye", "got it, it was in spam.
# thanks a lot, bye"): it ends on a farewell and asks nothing.
_FAREWELL_END = re.compile(
    r"(?:\bbye(?:\s*bye)?|\bgoodbye|\bcheers|\bsee\s+(?:you|ya)(?:\s+later)?|\btake\s+care|"
    r"\bhave\s+a\s+(?:nice|good|great|lovely)\s+\w+|\bthat'?s\s+all(?:\s+for\s+(?:now|today))?)"
    r"[\s!.:)(]*$"
)
# A short opening sentence that only says the last answer worked ("ok retry worked.",
# "fixed, thx."): the request, if any, is in what follows it.
_SENTENCE = re.compile(r"[^.!?;]+[.!?;]*")
_WORKED = re.compile(
    r"\b(?:work(?:s|ed)?|fixed|solved|resolved|sorted|helped|did\s+the\s+trick|got\s+it|"
    r"found\s+it|thx|thanks|thank\s+you)\b"
)
ACK_MAX_WORDS = 4


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _FILLER]


def is_social(text: str) -> bool:
    """Only greetings, thanks and goodbyes, or a farewell that closes the conversation."""
    lowered = text.lower()
    if "?" not in lowered and _FAREWELL_END.search(lowered):
        return True
    words = _WORD.findall(lowered)
    return any(w in _SOCIAL and w not in _FILLER for w in words) and all(
        w in _SOCIAL or w in _FILLER for w in words
    )


def request_part(text: str) -> str:
    """The message without the short "that worked" sentences it opens with: "ok retry
    worked. tell me a joke" is routed on "tell me a joke". The whole message when nothing
    follows them."""
    sentences = _SENTENCE.findall(text)
    rest = 0
    while rest < len(sentences) - 1:
        words = _WORD.findall(sentences[rest].lower())
        if not words or len(words) > ACK_MAX_WORDS or not _WORKED.search(sentences[rest].lower()):
            break
        rest += 1
    remainder = "".join(sentences[rest:]).strip()
    return remainder if rest and remainder else text


@dataclass(frozen=True)
class Reading:
    """How a message reads after the conversation so far."""

    follows_up: bool  # it goes on from the conversation: not an aside
    # It answers or reports on the current problem, or has almost no topic of its own
    # ("yes I'm signed in on both", "error 409", "and how much?"): only a very clear
    # pick of another specialist moves it.
    answers: bool
    social: bool  # only greetings, thanks, goodbyes
    yes_no: bool = False  # it starts with a yes or a no: it answers the agent, whatever follows
    new_topic: bool = False  # it announces another subject ("different question, ...")


def read_message(text: str, conversation: Conversation) -> Reading:
    if is_social(text):
        return Reading(follows_up=False, answers=False, social=True)
    lowered = _LEAD.sub("", text.lower())
    if _NEW_TOPIC.search(lowered):
        return Reading(follows_up=False, answers=False, social=False, new_topic=True)
    content = [w for w in content_words(text) if w not in _SOCIAL]
    yes_no = bool(_YES_NO.search(lowered))
    replies = (
        yes_no
        or bool(_ANSWERS.search(lowered))
        or bool(_CODE.search(lowered))
        or (bool(_ABOUT_US.search(lowered)) and len(content) <= 3)
    )
    # A short message with no such cue ("android", but also "gracias!") is left to the
    # router's "nothing fits"; it still needs a clear pick to change the topic. So does a
    # short answer to the agent's question: that alone does not make an aside a follow-up
    # (replies that end on "did that work?" would keep every aside with the specialist).
    short_answer = conversation.agent_asked and len(content) <= 4
    return Reading(
        follows_up=replies or bool(_CONTINUES.search(lowered)),
        answers=replies or short_answer or len(content) <= 2,
        social=False,
        yes_no=yes_no,
    )
