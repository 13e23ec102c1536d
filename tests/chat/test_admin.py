"""The chat admin as the book's author uses it: who asked what, what they thought of the
answers, and which questions the book could not answer."""

from __future__ import annotations

import pytest
from django.urls import reverse

from chat.models import Conversation, Feedback, Message

pytestmark = pytest.mark.django_db


def _source(heading: str, path: str, title: str = "Chapter 2: Sensors") -> dict:
    return {
        "n": 1,
        "title": title,
        "heading": heading,
        "path": path,
        "url": f"https://book.example/docs/{path}#x",
        "score": 0.25,
        "snippet": "…",
    }


@pytest.fixture
def history():
    """A conversation with an answered question, two unanswered ones near the same
    section, one with nothing close, and a thumbs-down."""
    conversation = Conversation.objects.create()
    answered = Message.objects.create(
        conversation=conversation,
        question="How does LiDAR work?",
        answer="By lasers [1].",
        sources=[_source("LiDAR", "part-1/sensors.mdx")],
        citations=[1],
        mode="llm",
        status="complete",
        latency_ms=900,
        ttft_ms=300,
        usage={"prompt_tokens": 500, "completion_tokens": 40, "total_tokens": 540},
    )
    for question in ("How much does a thermal camera cost?", "Can thermal cameras see people?"):
        Message.objects.create(
            conversation=conversation,
            question=question,
            uncertain=True,
            status="complete",
            answer="The book does not seem to cover this.",
            rewritten_query=question,
            sources=[_source("Depth Cameras", "part-1/sensors.mdx")],
        )
    Message.objects.create(
        conversation=conversation,
        question="How do I bake sourdough bread?",
        uncertain=True,
        status="complete",
        answer="The book does not seem to cover this.",
        sources=[],
    )
    Feedback.objects.create(message=answered, rating="down", comment="Needs more detail")
    return conversation


@pytest.mark.parametrize("model", ["conversation", "message", "feedback"])
def test_changelists_render(admin_client, history, model):
    response = admin_client.get(reverse(f"admin:chat_{model}_changelist"))
    assert response.status_code == 200
    assert "How does LiDAR work?" in response.content.decode() or model == "conversation"


def test_conversation_page_shows_its_messages(admin_client, history):
    response = admin_client.get(reverse("admin:chat_conversation_change", args=[history.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "How does LiDAR work?" in page
    assert "How do I bake sourdough bread?" in page


def test_message_page_shows_sources_and_tokens(admin_client, history):
    message = Message.objects.get(question="How does LiDAR work?")
    response = admin_client.get(reverse("admin:chat_message_change", args=[message.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "https://book.example/docs/part-1/sensors.mdx#x" in page
    assert "540" in page  # total tokens


def test_messages_filter_by_uncertain_and_mode(admin_client, history):
    url = reverse("admin:chat_message_changelist")
    uncertain = admin_client.get(url, {"uncertain__exact": "1"}).content.decode()
    assert "thermal camera cost" in uncertain
    assert "How does LiDAR work?" not in uncertain
    llm = admin_client.get(url, {"mode__exact": "llm"}).content.decode()
    assert "How does LiDAR work?" in llm
    assert "thermal camera cost" not in llm


def test_feedback_filters_by_rating(admin_client, history):
    url = reverse("admin:chat_feedback_changelist")
    assert "Needs more detail" in admin_client.get(url, {"rating__exact": "down"}).content.decode()
    assert (
        "Needs more detail" not in admin_client.get(url, {"rating__exact": "up"}).content.decode()
    )


def test_unanswered_questions_are_grouped_by_closest_section(admin_client, history):
    response = admin_client.get(reverse("admin:chat_unansweredquestion_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unanswered questions" in page
    # The two thermal-camera questions share their closest section; it comes first.
    assert "part-1/sensors.mdx › Depth Cameras</a> (2)" in page
    assert "Nothing in the book came close (1)" in page
    assert page.index("Depth Cameras</a> (2)") < page.index("Nothing in the book came close")
    assert "How do I bake sourdough bread?" in page
    assert "How does LiDAR work?" not in page  # answered questions are not listed


def test_unanswered_view_is_linked_from_the_admin_index(admin_client, history):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:chat_unansweredquestion_changelist") in page
    assert "Unanswered questions" in page


def test_admin_cannot_add_or_edit_answers(admin_client, history):
    assert admin_client.get(reverse("admin:chat_message_add")).status_code == 403
    message = Message.objects.first()
    response = admin_client.post(
        reverse("admin:chat_message_change", args=[message.pk]), {"answer": "rewritten"}
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.answer != "rewritten"


def test_feedback_shows_the_rated_answer_beside_the_question(admin_client, history):
    feedback = Feedback.objects.get()
    listing = admin_client.get(reverse("admin:chat_feedback_changelist")).content.decode()
    assert "How does LiDAR work?" in listing
    assert feedback.message.answer[:40] in listing
    page = admin_client.get(reverse("admin:chat_feedback_change", args=[feedback.pk]))
    assert page.status_code == 200
    assert feedback.message.answer in page.content.decode()
