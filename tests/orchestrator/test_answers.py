"""The offline model's replies: one passage, a link, a follow-up, and the next steps."""

from orchestrator import answers
from orchestrator.answers import Turn
from orchestrator.knowledge import word_count


def passage(slug, index, section, text="Do this. Then that.", title=None):
    return {
        "title": title or slug.title(),
        "slug": slug,
        "section": section,
        "index": index,
        "text": text,
        "url": f"/help/{slug}/#{section.lower().replace(' ', '-')}",
        "score": 1.0,
    }


CRASH = [
    passage("crash", 2, "3 Clear cache"),
    passage("crash", 0, "1 Check status"),
    passage("crash", 1, "2 Update"),
    passage("slow", 0, "Basics"),
]


def test_a_reply_is_the_passage_a_link_and_a_question_that_moves_on():
    reply = answers.answer(CRASH, user_text="app crashes", history=[], agent_name="Tech")
    assert "**Crash**" in reply and "**3 Clear cache**\nDo this. Then that." in reply
    assert "[Read the full article](/help/crash/#3-clear-cache)" in reply
    assert reply.endswith("Does that answer your question? If not, tell me a little more.")


def test_steps_are_followed_by_did_that_work():
    reply = answers.compose(
        passage("a", 0, "2. Update", "- iOS: update.\n- Android: too."), retry=False
    )
    assert "Did that work?" in reply


def test_a_long_section_is_cut_and_the_link_says_there_is_more():
    long = " ".join(f"Sentence number {i} is here." for i in range(60))
    reply = answers.compose(passage("a", 0, "Long", long), retry=False)
    assert "Read the rest in the full article" in reply
    assert word_count(reply) <= answers.PASSAGE_WORDS + 30


def test_nothing_found_is_none_so_the_model_says_so():
    assert answers.answer([], user_text="x", history=[], agent_name="Tech") is None


def test_a_follow_up_gets_the_next_step_of_the_article_not_the_same_passage():
    first = answers.answer(CRASH, user_text="app crashes", history=[], agent_name="Tech")
    history = [Turn("user", "app crashes"), Turn("assistant", first)]
    second = answers.answer(CRASH, user_text="it still crashes", history=history, agent_name="T")
    # The search put step 1 second, but after step 3 the next step is what follows it...
    assert "/help/crash/#3-clear-cache" not in second
    assert second.startswith("Here's the next thing to try")
    # ...and there is no later step in the results: the next best passage not yet shown.
    assert "/help/crash/#1-check-status" in second


def test_after_a_step_the_following_step_comes_next():
    ranked = [passage("crash", 0, "1 Check status"), passage("crash", 1, "2 Update")]
    ranked += [passage("crash", 3, "4 Reinstall"), passage("crash", 2, "3 Clear cache")]
    history = [Turn("user", "it crashes")]
    history.append(Turn("assistant", answers.compose(ranked[0], retry=False)))
    reply = answers.answer(ranked, user_text="that didn't work", history=history, agent_name="T")
    assert "/help/crash/#2-update" in reply
    history += [Turn("user", "that didn't work"), Turn("assistant", reply)]
    reply = answers.answer(ranked, user_text="still no luck", history=history, agent_name="T")
    assert "/help/crash/#3-clear-cache" in reply


def test_when_everything_was_shown_the_reply_says_so_instead_of_repeating():
    only = [passage("crash", 0, "1 Check status")]
    history = [Turn("assistant", answers.compose(only[0], retry=False))]
    reply = answers.answer(only, user_text="what else can I try", history=history, agent_name="T")
    assert "/help/" not in reply and "everything the T knowledge base has" in reply


def test_follow_ups_search_with_the_earlier_question():
    history = [Turn("user", "the app crashes on login"), Turn("assistant", "...")]
    assert answers.search_query("it still crashes", history).endswith("the app crashes on login")
    assert "login" in answers.search_query("what else can I try?", history)
    assert answers.search_query("how do I download an invoice?", history) == (
        "how do I download an invoice?"
    )
    assert answers.search_query("it still crashes", []) == "it still crashes"


def test_a_follow_up_after_a_hand_back_searches_with_the_note_first():
    history = [
        Turn("user", "I was charged twice"),
        Turn("assistant", "..."),
        Turn("user", "It was on my last invoice"),
    ]
    note = "Refund approved; they want to know how long it takes."
    # The note stands for the older messages: only the latest one joins it.
    assert answers.search_query("When do I get it?", history, note) == (
        "When do I get it? Refund approved; they want to know how long it takes. "
        "It was on my last invoice"
    )
    assert answers.search_query("When do I get it?", [], note).endswith(note)
    # A question of its own is searched on its own words, note or not.
    assert answers.search_query("how do I download an invoice?", history, note) == (
        "how do I download an invoice?"
    )


def test_only_links_from_assistant_messages_count_as_shown():
    history = [Turn("user", "see [this](/help/crash/#1-check-status)")]
    assert answers.shown_urls(history) == set()
