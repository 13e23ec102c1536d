"""The extractive answerer: which sentences it quotes, how it keeps code, how it cites."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import pytest

from ragsite.rag import providers, scoring
from ragsite.rag.exceptions import LLMError
from ragsite.rag.extractive import (
    NO_SOURCES_MESSAGE,
    SELECTION_ID,
    ExtractiveChatModel,
    extractive_answer,
    sentence_similarities,
)
from ragsite.rag.llm import EXTRACTIVE_NOTICE
from ragsite.rag.passages import lead_in_statement, quotable_sentences, split_sentences
from ragsite.rag.types import AnswerRequest, ChatMessage, Chunk, Source
from tests.conftest import CountingEmbedder


def source(n: int, body: str, *, title: str = "Sensors", chunk_id: str | None = None) -> Source:
    chunk = Chunk(
        id=chunk_id or f"id-{n}",
        text=f"{title}\n\n{body}",
        body=body,
        title=title,
        heading=title,
        path=f"chapter-{n}.md",
        url=None,
        position=0,
        content_hash=f"hash-{n}",
    )
    return Source(n=n, chunk=chunk, score=0.8, snippet=body[:80])


LIDAR = source(
    2,
    "Robots need to know what is around them. "
    "A lidar sensor measures distance by timing how long laser pulses take to return. "
    "The resulting point cloud describes the shape of the room.\n\n"
    "```python\nscan = lidar.read()  # returns distance in metres\n```\n\n"
    "See the figure.",
)
CAMERA = source(
    5,
    "Cameras capture colour images at high resolution. "
    "Unlike lidar, a camera does not measure distance directly; depth must be estimated. "
    "Stereo pairs estimate depth from two viewpoints.",
    title="Cameras",
)
COOKING = source(7, "Knead the dough for ten minutes, then let it rest in a warm place.")
# From the Rust book (ch15-04): generic types in inline code, and a transition.
RC = source(
    1,
    "Now that you know how to use `Box<T>`, let's look at another smart pointer. "
    "You have to enable multiple ownership explicitly by using the Rust type `Rc<T>`, "
    "which is an abbreviation for reference counting. The `Rc<T>` type keeps track of "
    "the number of references to a value to determine whether or not the value is "
    "still in use (if there are zero references, the value can be cleaned up). "
    "What happens when the last owner leaves?",
    title="Rc<T>, the Reference-Counted Smart Pointer",
)
# From the Rust book (ch01-03): the answer is a shell command.
CARGO = source(
    3,
    "Let's create a new project using Cargo and look at how it differs from our "
    "original Hello, world! project. Navigate back to your projects directory. "
    "Then, on any operating system, run the following:\n\n"
    "```console\n$ cargo new hello_cargo\n$ cd hello_cargo\n```\n\n"
    "The first command creates a new directory and project called hello_cargo. "
    "We've named our project hello_cargo, and Cargo creates its files in a directory "
    "of the same name.",
    title="Creating a Project with Cargo",
)


def citations(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\[(\d+)\]", text)}


def cited_sentences(text: str) -> list[str]:
    return re.findall(r"[^\n]*?\[\d+\][.!?:]", text)


async def answer(question: str, sources: list[Source]) -> str:
    request = AnswerRequest(question=question, sources=sources)
    return "".join([piece async for piece in ExtractiveChatModel().stream(request)])


async def test_answer_quotes_the_stating_sentence_first_and_cites_only_given_sources():
    model = providers.get_chat_model()  # no key, no base URL: the offline default
    assert isinstance(model, ExtractiveChatModel)
    text = await answer("How does a lidar sensor measure distance?", [LIDAR, CAMERA])

    assert text.startswith("A lidar sensor measures distance by timing how long laser pulses")
    assert citations(text) <= {2, 5}
    assert "lidar.read()" not in text  # the question asks for no code
    assert "See the figure" not in text  # too short to stand alone
    assert 2 <= len(cited_sentences(text)) <= 5


async def test_answer_carries_no_notice_of_its_own():
    # The `done` event's mode is the one notice; the text does not repeat it.
    text = await answer("How does a lidar sensor measure distance?", [LIDAR])
    assert EXTRACTIVE_NOTICE not in text
    assert "language model" not in text.lower()


async def test_generic_types_in_inline_code_are_kept_and_transitions_are_not_quoted():
    text = await answer("What is Rc<T> used for?", [RC])
    assert "`Rc<T>`" in text
    assert "Now that you know" not in text  # a transition, not an answer
    assert "What happens when the last owner leaves?" not in text  # the book's question
    # The parenthesis is part of its sentence: never cut inside it.
    assert "(if there are zero references, the value can be cleaned up)" in text


async def test_a_command_is_quoted_as_a_fenced_block_not_as_prose():
    text = await answer("What command creates a new Cargo project?", [CARGO])
    assert "```console\n$ cargo new hello_cargo\n$ cd hello_cargo\n```" in text
    assert "hello_cargo $ cd" not in text  # never run together on one line
    assert "run the following [3]:" in text  # the block keeps its introduction
    assert citations(text) == {3}


def test_sentences_never_end_inside_brackets():
    sentences = split_sentences(
        "The value is dropped (see Chapter 4. Ownership rules apply) at the end. "
        "Then [Listing 4-1. Example] shows it. A third one follows here."
    )
    assert sentences == [
        "The value is dropped (see Chapter 4. Ownership rules apply) at the end.",
        "Then [Listing 4-1. Example] shows it.",
        "A third one follows here.",
    ]


def test_markup_is_dropped_but_identifiers_and_code_survive():
    [sentence] = split_sentences(
        "Set `RETRIEVAL_SCORE_FLOOR` and pass input_ids to <Tabs>Vec<String></Tabs>; "
        "this is **bold**, _soft_ and a [link](https://x.example)."
    )
    assert sentence == (
        "Set `RETRIEVAL_SCORE_FLOOR` and pass input_ids to Vec<String>; "
        "this is bold, soft and a link."
    )


async def test_selection_is_explained_from_the_passages_around_it_not_echoed():
    selected = "Stereo pairs estimate depth from two viewpoints."
    selection = source(1, selected, title="Your selection", chunk_id=SELECTION_ID)
    text = await answer("Explain this", [selection, CAMERA, LIDAR])
    assert selected not in text
    assert citations(text)
    assert 1 not in citations(text)
    assert "camera does not measure distance directly" in text


async def test_similarities_come_from_the_real_embedder():
    sims = await sentence_similarities(
        question="How is depth estimated from stereo cameras?", sources=[LIDAR, CAMERA]
    )
    stereo = sims["Stereo pairs estimate depth from two viewpoints."]
    assert stereo > sims["Robots need to know what is around them."]


def test_answer_is_deterministic():
    question = "What does a lidar measure?"
    answers = {
        extractive_answer(question=question, sources=[LIDAR, CAMERA, COOKING]) for _ in range(3)
    }
    assert len(answers) == 1


async def test_without_sources_the_book_does_not_cover_it():
    assert await answer("Who won in 1998?", []) == NO_SOURCES_MESSAGE


async def test_streams_word_by_word():
    request = AnswerRequest(question="How does a lidar sensor measure distance?", sources=[LIDAR])
    model = ExtractiveChatModel()
    pieces = [piece async for piece in model.stream(request)]
    assert len(pieces) > 10
    assert "".join(pieces) == await model.answer(request)


async def test_the_same_question_over_the_same_sources_is_answered_from_memory(monkeypatch):
    from ragsite.rag import extractive

    calls: list[str] = []
    real = extractive.sentence_similarities

    async def counting(**kwargs):
        calls.append(kwargs["question"])
        return await real(**kwargs)

    monkeypatch.setattr(extractive, "sentence_similarities", counting)
    model = ExtractiveChatModel()
    request = AnswerRequest(question="How does a lidar sensor measure distance?", sources=[LIDAR])
    first = await model.answer(request)
    assert await model.answer(request) == first
    assert len(calls) == 1
    # Other sources (or the same ones scored otherwise) are composed anew.
    rescored = Source(n=LIDAR.n, chunk=LIDAR.chunk, score=0.5, snippet=LIDAR.snippet)
    await model.answer(AnswerRequest(question=request.question, sources=[rescored]))
    assert len(calls) == 2


async def test_cannot_complete():
    with pytest.raises(LLMError):
        await ExtractiveChatModel().complete([ChatMessage("user", "rewrite this")])


async def test_exercise_prompts_and_next_steps_give_way_to_the_passage_that_answers():
    exercises = source(
        1,
        "Explain the difference between prediction and correction steps in a Kalman filter. "
        "Implement a simple 1D Kalman filter for tracking position.",
        title="Kalman Filters > Exercises",
    )
    next_steps = source(
        2,
        "Next Steps: In the next chapter, we'll explore particle filters for tracking "
        "position with a Kalman filter's help.",
        title="Kalman Filters > Summary",
    )
    kalman = source(
        3,
        "The Kalman filter estimates a robot's state by alternating a prediction step and "
        "a correction step. The correction step weighs each measurement by the Kalman gain.",
        title="Kalman Filters",
    )
    text = await answer(
        "What is the difference between the prediction and correction steps of a Kalman filter?",
        [exercises, next_steps, kalman],
    )
    assert text.startswith("The Kalman filter estimates a robot's state by alternating")
    assert "Next Steps" not in text


async def test_sentences_embedded_once_are_looked_up_afterwards():
    counting = CountingEmbedder(providers.get_embedder())
    sources = [
        source(1, "Ownership is a set of rules that govern how a Rust program manages memory."),
        source(2, "Each value in Rust has an owner. There can only be one owner at a time."),
    ]
    first = await sentence_similarities(
        question="What is ownership?", sources=sources, embedder=counting
    )
    embedded = len(counting.texts)
    assert embedded >= 2
    again = await sentence_similarities(
        question="What is ownership?", sources=sources, embedder=counting
    )
    assert again == pytest.approx(first)
    assert len(counting.texts) == embedded  # nothing embedded the second time
    other = await sentence_similarities(
        question="Who owns a value?", sources=sources, embedder=counting
    )
    assert counting.texts[embedded:] == ["Who owns a value?"]  # only the new question
    assert set(other) == set(first)


# From the robotics textbook: a list introduced by a colon, a table, a bold title line.
IMU = source(
    1,
    "**Inertial Measurement Units**\n\n"
    "IMUs provide essential motion data through accelerometers and gyroscopes:\n\n"
    "- Accelerometers measure linear acceleration along three axes\n"
    "- Gyroscopes measure angular velocity around three axes\n\n"
    "| Sensor | Depth Range | Interface |\n|---|---|---|\n"
    "| D435i | 0.2m - 10m optimal | USB 3.0 |\n",
    title="Sensors > IMU",
)


async def test_a_list_is_quoted_with_the_sentence_that_introduces_it():
    text = await answer("What do IMUs measure motion with?", [IMU])
    assert text.startswith(
        "IMUs provide essential motion data through accelerometers and gyroscopes:\n\n"
        "- Accelerometers measure linear acceleration along three axes\n"
        "- Gyroscopes measure angular velocity around three axes [1]."
    )
    assert "Inertial Measurement Units [1]" not in text  # a title line is no sentence


def test_a_table_row_reads_as_one_statement_and_a_title_line_is_left_out():
    sentences = split_sentences(IMU.chunk.body)
    assert "D435i: Depth Range: 0.2m - 10m optimal; Interface: USB 3.0." in sentences
    assert "Inertial Measurement Units" not in sentences
    assert not any("|" in sentence for sentence in sentences)


def test_a_list_item_that_labels_what_it_says_is_a_statement_not_a_title():
    # A tier's items name products in capitals; they say what the tier includes.
    body = (
        "- Ideal for: Beginners, students, edge AI projects\n"
        "- Includes: Jetson Orin Nano, Intel RealSense D435i\n\n"
        "**Install Latest Production Driver**\n\n"
        "- Getting Started Guide\n"
    )
    quoted = quotable_sentences(body)
    assert "Includes: Jetson Orin Nano, Intel RealSense D435i" in quoted
    assert "Install Latest Production Driver" not in quoted  # a title line
    assert "Getting Started Guide" not in quoted  # a link list's entry


async def test_the_answer_stays_in_the_passage_of_its_best_sentence():
    ownership = source(
        1,
        "Ownership is a set of rules that govern how a Rust program manages memory. "
        "Each value in Rust has an owner. There can only be one owner at a time. "
        "When the owner goes out of scope, the value will be dropped.",
        title="What Is Ownership?",
    )
    other = source(
        2,
        "Rust programs manage memory with ownership rather than a garbage collector. "
        "Memory is a resource like any other.",
        title="Smart Pointers",
    )
    text = await answer("What is ownership in Rust?", [ownership, other])
    assert text.startswith("Ownership is a set of rules that govern how a Rust program")
    first, *others = text.split("\n\n")
    # The passage's own sentences follow its best one, in the book's order; another
    # source adds one paragraph at most.
    assert citations(first) == {1}
    assert len(cited_sentences(first)) >= 2
    assert first.index("Each value in Rust has an owner") < first.index("will be dropped")
    assert len(others) <= 1
    assert 2 <= len(cited_sentences(text)) <= 5


async def test_a_lead_in_that_announces_a_command_comes_with_its_block():
    rustup = source(
        4,
        "Once Rust is installed via `rustup`, updating to a newly released version is easy. "
        "To uninstall Rust and `rustup`, run the following uninstall script from your shell:\n\n"
        "```console\n$ rustup self uninstall\n```\n\n"
        "On macOS, you can get a C compiler by running:\n\n"
        "```console\n$ xcode-select --install\n```\n",
        title="Installation > Updating and Uninstalling",
    )
    text = await answer("How do I remove Rust and rustup from my machine?", [rustup])
    # A one-line block is quoted in the sentence that announces it, which then says it.
    assert "from your shell: `rustup self uninstall` [4]." in text
    assert "```" not in text
    assert "by running [4]." not in text  # says nothing without its block


# From the Rust book (ch04-03, ch11-02): lead-ins that state the answer before they point
# at their block, one of them across the listing's file label.
SLICES = source(
    6,
    "A _string slice_ is a reference to a contiguous sequence of the elements of a "
    "`String`, and it looks like this:\n\n"
    '```rust\n    let s = String::from("hello world");\n\n    let hello = &s[0..5];\n```\n\n'
    "Figure 4-7 shows this in a diagram.",
    title="The Slice Type > String Slices",
)
IGNORED = source(
    8,
    "Sometimes a few specific tests can be very time-consuming to execute. Rather than "
    "listing as arguments all tests you do want to run, you can instead annotate the "
    "time-consuming tests using the `ignore` attribute to exclude them, as shown here:\n\n"
    "Filename: src/lib.rs\n\n"
    "```rust\n#[test]\n#[ignore]\nfn expensive_test() {\n    // an hour\n}\n```\n\n"
    "After `#[test]`, we add the `#[ignore]` line to the test we want to exclude.",
    title="Controlling How Tests Are Run > Ignoring Some Tests",
)


async def test_a_lead_in_that_states_something_is_quoted_without_its_pointer():
    quoted = quotable_sentences(SLICES.chunk.body)
    assert any(text.startswith("A string slice is a reference") for text in quoted)
    text = await answer("What is a string slice?", [SLICES])
    # Shown with its block, it still points at it; without, it ends where it stops
    # stating (`lead_in_statement`).
    assert text.startswith(
        "A string slice is a reference to a contiguous sequence of the elements of a "
        "`String`, and it looks like this [6]:\n\n```rust"
    )
    assert lead_in_statement(quoted[0]) == (
        "A string slice is a reference to a contiguous sequence of the elements of a `String`."
    )
    assert "Figure 4-7" not in text
    # A lead-in that says nothing before its pointer stays out.
    assert "Figure 4-7" not in text
    assert not any(
        "would look like" in t
        for t in quotable_sentences(
            "Printing a variable and an expression in one call would look like this:\n\n"
            '```rust\nlet x = 5;\nprintln!("{x}");\n```\n'
        )
    )


async def test_a_block_after_a_file_label_comes_with_the_sentence_that_introduces_it():
    text = await answer("How do I write a test that is left out of normal runs?", [IGNORED])
    # The block follows the sentence that introduces it, not a bare "[8]:" under its
    # file label.
    assert "to exclude them, as shown here [8]:\n\n```rust\n#[test]\n#[ignore]" in text
    assert "[8]:\n\n```" not in text.replace("as shown here [8]:\n\n```", "")


def test_text_before_a_pages_first_heading_is_in_the_section_the_page_title_names():
    # From the Rust book (ch13-01): the page's opening defines closures; a later section,
    # whose chunk has a heading, only mentions them.
    opening = source(
        1,
        "Rust’s closures are anonymous functions you can save in a variable or pass as "
        "arguments to other functions. Unlike functions, closures can capture values from "
        "the scope in which they’re defined.",
        title="Closures",
    )
    opening = Source(
        n=1,
        chunk=dataclasses.replace(opening.chunk, heading=""),
        score=0.8,
        snippet=opening.snippet,
    )
    later = source(
        2,
        "Closures don’t usually require you to annotate the types of the parameters or the "
        "return value like `fn` functions do. Closures are typically short and relevant "
        "only within a narrow context.",
        title="Closures > Closure Type Inference and Annotation",
    )
    text = extractive_answer(question="What is a closure?", sources=[opening, later])
    assert text.startswith("Rust’s closures are anonymous functions")


def test_a_what_is_question_opens_with_the_sentence_that_says_what_it_is():
    # From the Rust book (ch14-03): the section's first sentence names workspaces; the
    # definition comes later, and shares fewer of the question's words.
    workspaces = source(
        9,
        "As your project develops, you might find that the library crate continues to get "
        "bigger and you want to split your package further into multiple library crates. "
        "Cargo offers a feature called workspaces that can help manage multiple related "
        "packages that are developed in tandem. Running `cargo new` inside a Cargo "
        "workspace also adds the newly created package to the workspace. A workspace is a "
        "set of packages that share the same Cargo.lock and output directory. One "
        "downside of a workspace is that its packages are built together.",
        title="Cargo Workspaces",
    )
    text = extractive_answer(question="What is a Cargo workspace?", sources=[workspaces])
    assert text.startswith("A workspace is a set of packages that share the same Cargo.lock")


@pytest.mark.parametrize(
    ("question", "sentence", "defines"),
    [
        (
            "What is a smart pointer?",
            "Smart pointers, on the other hand, are data structures.",
            True,
        ),
        ("What are integration tests?", "In Rust, integration tests are entirely external.", True),
        ("What is a closure?", "Rust’s closures are anonymous functions.", True),
        ("What is a supertrait?", "The trait it relies on is called a supertrait of it.", True),
        (
            "What does borrowing mean in Rust?",
            "We call the action of creating a reference borrowing.",
            True,
        ),
        (
            "What is concurrency, as opposed to parallelism?",
            "When one works on several tasks, this is concurrency.",
            True,
        ),
        # A setting after the term is no part of it ("in Cargo's terms", "in ROS 2").
        (
            "What is a package in Cargo's terms?",
            "A package is a bundle of one or more crates.",
            True,
        ),
        ("What is a node in ROS 2?", "Nodes are independent processes that compute.", True),
        # "What does X do?": a sentence that opens with X says what it does.
        (
            "What does the loop keyword do?",
            "The `loop` keyword tells Rust to run code again.",
            True,
        ),
        (
            "What does #[cfg(test)] on the module do?",
            "The `#[cfg(test)]` annotation tells Rust.",
            True,
        ),
        (
            "What does the loop keyword do?",
            "In a `for` loop, the value that directly follows the keyword `for` is a pattern.",
            False,
        ),
        # The noun is in a phrase of the subject, not its head; or the question is no term.
        (
            "What is the state pattern?",
            "One downside of the state pattern is that it couples states.",
            False,
        ),
        (
            "What is the state pattern?",
            "The implementation using the state pattern is easy to extend.",
            False,
        ),
        (
            "What is the widest object the planner will try to grip?",
            "The widest object is 8 cm.",
            False,
        ),
        ("How do I make a workspace?", "A workspace is a set of packages.", False),
    ],
)
def test_which_sentences_say_what_the_question_asks_about(question, sentence, defines):
    asked = scoring._question(question)
    assert scoring._defines(sentence, asked.subject, does=asked.does) is defines


def test_the_subject_keeps_its_words_in_order_whatever_the_hash_seed():
    # A token of two words ("request-response") once went through a set, whose order
    # changes with PYTHONHASHSEED: the head noun must be the phrase's last word.
    code = (
        "from ragsite.rag import scoring; "
        "print(scoring._question('What is request-response communication?').subject, "
        "scoring._defines('Cargo.lock files, as a rule, are plain text.', "
        "scoring._question('What is a Cargo.lock file?').subject))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert outputs == {"('request', 'respons', 'communication') True\n"}


def test_a_how_to_question_counts_inline_code_as_it_does_for_a_question_for_code():
    # From the Rust book (ch20-03): the way to do it is in code, `type`.
    aliases = source(
        3,
        "Rust provides the ability to declare a _type alias_ to give an existing type another "
        "name. For this we use the `type` keyword. For example, we can create the alias "
        "`Kilometers` to `i32` like so:\n\n```rust\n    type Kilometers = i32;\n```\n\n"
        "Now the alias `Kilometers` is a _synonym_ for `i32`; unlike the `Millimeters` and "
        "`Meters` types, `Kilometers` is not a separate, new type.",
        title="Advanced Types > Type Synonyms and Type Aliases",
    )
    assert scoring._question("How do I give an existing type another name?").code
    assert not scoring._question("Why would I give an existing type another name?").code
    text = extractive_answer(
        question="How do I give an existing type another name?", sources=[aliases]
    )
    assert text.startswith("For example, we can create the alias `Kilometers` to `i32` like so:")
    assert "For this we use the `type` keyword [3]." in text


async def test_a_chapters_learning_objectives_do_not_answer_for_it():
    # From the textbook (chapter 6): the objectives name services; the section states
    # what they are for.
    opening = source(
        1,
        "By the end of this chapter, you'll be able to:\n\n"
        "- Explain the ROS 2 architecture and its DDS foundation\n"
        "- Implement nodes, topics, services, and actions effectively\n\n"
        "Services provide synchronous request-response communication between nodes.",
        title="Chapter 6: ROS 2 Fundamentals",
    )
    text = await answer("What are ROS 2 services for?", [opening])
    assert not text.startswith("By the end of this chapter")
    assert text.index("Services provide synchronous") < text.index("By the end of this chapter")


def test_a_sentence_that_leads_on_in_its_main_clause_does_not_open_the_answer():
    # From the Rust book (ch03-03).
    functions = source(
        4,
        "Because Rust is an expression-based language, this is an important distinction to "
        "understand. Other languages don’t have the same distinctions, so let’s look at what "
        "statements and expressions are and how their differences affect the bodies of "
        "functions. Function bodies are made up of a series of statements optionally ending "
        "in an expression. Statements are instructions that perform some action and do not "
        "return a value.",
        title="Functions > Statements and Expressions",
    )
    assert scoring._wording("So let’s look at what statements are.")[1] == 1.0
    text = extractive_answer(
        question="What is the difference between a statement and an expression?",
        sources=[functions],
    )
    assert not text.startswith("Other languages")


def test_a_long_list_is_quoted_with_its_last_items():
    # Shaped after the textbook's Jetson guide: the answer is the last item's second line.
    steps = "\n".join(f"- Step {i}: Select the component number {i} to install" for i in range(9))
    flashing = source(
        1,
        "Run SDK Manager: Launch SDK Manager and select:\n\n" + steps + "\n"
        "- Start Installation: Accept the license terms and begin the flash process. "
        "This typically takes 30-45 minutes.\n",
        title="Jetson Orin Nano Setup > Flashing JetPack",
    )
    text = extractive_answer(
        question="How long does flashing JetPack with SDK Manager take?", sources=[flashing]
    )
    first = text.split("[1]")[0]
    assert first.startswith("Run SDK Manager: Launch SDK Manager and select:")
    assert "This typically takes 30-45 minutes" in first


def test_partial_or_missing_similarities_still_answer_the_same_question():
    question = "How does a lidar sensor measure distance?"
    best = "A lidar sensor measures distance by timing how long laser pulses take to return."
    for similarities in (None, {}, {best: 0.8}, {"Robots need to know what is around them.": 0.3}):
        text = extractive_answer(
            question=question, sources=[LIDAR, CAMERA], similarities=similarities
        )
        assert text.startswith(best[:-1])


def test_quotable_sentences_are_what_an_answer_may_quote():
    # Ingestion stores a vector for each of these (ragsite/rag/sentences.py).
    quoted = quotable_sentences(
        IMU.chunk.body + "\nListing 2-1: Reading a sensor\n\nWhat does the robot see next?\n\n"
        "On Linux, you can read it by running:\n\n```console\n$ sensors\n```\n"
    )
    assert "IMUs provide essential motion data through accelerometers and gyroscopes:" in quoted
    assert "D435i: Depth Range: 0.2m - 10m optimal; Interface: USB 3.0." in quoted
    assert not any(
        text.startswith(("Inertial Measurement", "Listing 2-1", "What does")) for text in quoted
    )
    # "... by running:" says nothing alone; with the one line it announces, it does.
    assert "On Linux, you can read it by running:" not in quoted
    assert "On Linux, you can read it by running: `sensors`" in quoted


async def test_a_later_source_that_states_the_answer_opens_it():
    # Source 1 is about the topic, source 3 says what the question asks: sources compete
    # on their sentences' scores, not on their rank alone.
    about = source(
        1,
        "Structs let you name and package together multiple related values. "
        "Each piece of data in a struct is called a field, with a name and a type.",
        title="Defining and Instantiating Structs",
    )
    states = source(
        3,
        "It is often useful to create a new instance of a struct that includes most of "
        "the values from another instance. You can do this using struct update syntax: "
        "the `..user1` at the end sets the remaining fields from `user1`.",
        title="Creating Instances from Other Instances with Struct Update Syntax",
    )
    text = await answer(
        "How do I create a struct instance that takes most of its values from another instance?",
        [about, states],
    )
    first = cited_sentences(text)[0]
    assert first.startswith("It is often useful to create a new instance of a struct")
    assert "[3]" in first
    assert 2 <= len(cited_sentences(text)) <= 5
    assert citations(text) <= {1, 3}


@pytest.mark.parametrize("apostrophe", ["'", "\u2019"])
async def test_transitions_are_not_quoted_first_whichever_apostrophe_the_book_uses(apostrophe):
    # The Rust book writes "let’s"; a transition is a transition in either spelling.
    rules = source(
        1,
        f"First, let{apostrophe}s see what happens to each value when its owner goes away. "
        "Each value in Rust has an owner, and there can only be one owner at a time. "
        "When the owner goes out of scope, the value will be dropped.",
        title="Ownership Rules",
    )
    text = await answer("What happens to a value when its owner goes away?", [rules])
    assert not text.startswith("First, let")
    assert cited_sentences(text)[0].startswith(("Each value in Rust", "When the owner goes"))


async def test_a_command_question_quotes_the_sentence_that_names_the_command():
    cargo_init = source(
        2,
        "If you started a project that doesn’t use Cargo, you can convert it to a project "
        "that does use Cargo. Move the project code into the src directory and create an "
        "appropriate Cargo.toml file. One easy way to get that Cargo.toml file is to run "
        "`cargo init`, which will create it for you automatically.",
        title="Hello, Cargo!",
    )
    text = await answer("What command turns an existing folder into a Cargo project?", [cargo_init])
    assert "run `cargo init`, which will create it for you automatically [2]." in text


async def test_a_block_with_its_own_introduction_still_leaves_at_most_five_cited_lines():
    prose = source(
        1,
        "Cargo is Rust's build system and package manager. Cargo builds your code, "
        "downloads the libraries your code depends on, and builds those libraries. "
        "Cargo comes installed with Rust if you used the official installers. "
        "Cargo creates a new project with a Cargo.toml file and a src directory. "
        "Cargo also initializes a new Git repository along with a .gitignore file. "
        "Cargo expects your source files to live inside the src directory.",
        title="Hello, Cargo!",
    )
    command = source(
        2,
        "To start a new project with Cargo, enter the following commands:\n\n"
        "```console\n$ cargo new hello_cargo\n$ cd hello_cargo\n```\n",
        title="Creating a Project with Cargo",
    )
    text = await answer("What command creates a new project with Cargo?", [prose, command])
    assert "```console\n$ cargo new hello_cargo\n$ cd hello_cargo\n```" in text
    outside_code = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    assert 2 <= len(re.findall(r"\[\d+\]", outside_code)) <= 5


async def test_the_best_sentence_opens_the_answer_when_it_introduces_a_block():
    uninstall = source(
        4,
        "Once Rust is installed via `rustup`, updating to a newly released version is easy. "
        "From your shell, run the following update script:\n\n"
        "```console\n$ rustup update\n```\n\n"
        "To uninstall Rust and `rustup`, run the following uninstall script from your shell:\n\n"
        "```console\n$ rustup self uninstall\n```\n\n"
        "Rust also ships with a local copy of the documentation.",
        title="Installation > Updating and Uninstalling",
    )
    text = await answer("How do I uninstall Rust and rustup from my shell?", [uninstall])
    assert text.startswith(
        "To uninstall Rust and `rustup`, run the following uninstall script from your shell:"
        " `rustup self uninstall` [4]."
    )


async def test_a_sentence_about_the_page_itself_does_not_open_the_answer():
    # "This guide provides ...", "This chapter explored ...": about the document, not
    # about what the reader asked, however many of its words they share.
    workstation = source(
        2,
        "This guide provides comprehensive instructions for setting up a high-performance "
        "workstation optimized for robotics development.\n\n"
        "| Component | Minimum |\n|---|---|\n| GPU | NVIDIA RTX 4070 Ti (12GB VRAM) |\n"
        "| Memory | 32GB DDR5 |\n",
        title="Workstation Setup > Hardware Requirements",
    )
    text = await answer("Which GPU does the robotics workstation need at minimum?", [workstation])
    assert not text.startswith("This guide")
    assert "RTX 4070 Ti" in cited_sentences(text)[0]


async def test_a_how_to_question_gets_the_block_that_matches_it():
    # No code word in the question ("command", "run" ...): asking how to do something
    # in a technical book is often answered by the block.
    persistence = source(
        3,
        "Persistence mode keeps the NVIDIA driver loaded even when no application uses "
        "the GPU, which shortens the start of every job. Enable persistence mode:\n\n"
        "```bash\nsudo nvidia-smi -pm 1\n```\n\n"
        "Always use persistence mode for production workloads.",
        title="GPU Setup > Persistence",
    )
    text = await answer("How do I turn on persistence mode?", [persistence])
    assert text.startswith("Enable persistence mode: `sudo nvidia-smi -pm 1` [3].")
    assert citations(text) == {3}


async def test_a_table_is_quoted_with_the_sentence_that_introduces_it():
    # "... capabilities:" quoted alone says nothing; with its table it is a statement.
    camera = source(
        1,
        "The D435i is a depth camera with on-board processing and these capabilities:\n\n"
        "| Feature | Specification |\n|---|---|\n"
        "| Depth Range | 0.2m - 10m optimal |\n| Weight | 72g |\n\n"
        "Its stereo pair sees texture the projector adds to plain walls.",
        title="Intel RealSense D435i",
    )
    text = await answer("What are the D435i camera's capabilities?", [camera])
    assert text.startswith(
        "The D435i is a depth camera with on-board processing and these capabilities:\n\n"
        "- Depth Range: 0.2m - 10m optimal.\n- Weight: 72g [1]."
    )
    assert text.count("Depth Range") == 1  # each row quoted once


async def test_a_command_question_opens_with_the_command_its_sentences_announce():
    rustfmt = source(
        2,
        "Many collaborative projects use `rustfmt` to prevent arguments about which style "
        "to use when writing Rust: everyone formats their code using the tool. "
        "To format any Cargo project, run the `rustfmt` tool through Cargo on the project:\n\n"
        "```console\n$ cargo fmt\n```\n\n"
        "The `rustfmt` tool reformats your code according to the community code style.",
        title="Automatic Formatting with rustfmt",
    )
    text = await answer("What command formats my code in the community code style?", [rustfmt])
    assert text.startswith(
        "To format any Cargo project, run the `rustfmt` tool through Cargo on the project:"
        " `cargo fmt` [2]."
    )
    assert "reformats your code according to the community code style [2]." in text
    assert text.count("To format any Cargo project") == 1


async def test_a_best_item_opens_the_answer_with_its_list_and_is_quoted_once():
    estimation = source(
        4,
        "State estimation and localization are fundamental to Physical AI systems:\n\n"
        "- Kalman filters provide optimal linear estimation\n"
        "- Particle filters excel at multi-modal distributions\n"
        "- SLAM simultaneously maps and localizes\n\n"
        "These techniques let robots understand where they are.",
        title="State Estimation > Summary",
    )
    text = await answer("What do Kalman filters provide?", [estimation])
    assert text.startswith(
        "State estimation and localization are fundamental to Physical AI systems:\n\n"
        "- Kalman filters provide optimal linear estimation\n"
    )
    assert text.count("Kalman filters provide optimal linear estimation") == 1


async def test_a_block_after_a_list_follows_the_list_without_repeating_its_last_item():
    spaces = source(
        1,
        "Motion planning operates in multiple spaces:\n\n"
        "- Configuration Space: all possible robot configurations\n"
        "- Workspace: reachable positions of end-effectors\n\n"
        "```python\nclass ConfigurationSpace:  # the configuration space of a planner\n"
        "    pass\n```\n",
        title="Motion Planning > Configuration Space",
    )
    text = await answer("What code defines the configuration space for motion planning?", [spaces])
    assert "end-effectors [1].\n\n```python\nclass ConfigurationSpace:" in text
    assert text.count("reachable positions of end-effectors") == 1


# From the Rust book (ch06-01): a quotation under the sentence that says whose it is.
HOARE = source(
    4,
    "In his 2009 presentation “Null References: The Billion Dollar Mistake,” Tony Hoare, "
    "the inventor of null, had this to say:\n\n"
    "> I call it my billion-dollar mistake. At that time, I was designing the first "
    "comprehensive type system for references in an object-oriented language.\n\n"
    "The problem with null values is that if you try to use a null value as a not-null "
    "value, you’ll get an error of some kind. However, the concept that null is trying to "
    "express is still a useful one: A null is a value that is currently invalid or absent "
    "for some reason.\n\n"
    "> Note: Rust does not have nulls, but it does have an enum that can encode the "
    "concept of a value being present or absent.",
    title="Defining an Enum > The Option Enum",
)


def test_a_quotation_is_quoted_with_whose_words_they_are():
    quoted = quotable_sentences(HOARE.chunk.body)
    # The lead-in ("... had this to say:") says nothing without the quotation: it is
    # quoted with its first sentence, and the rest is quoted as someone's words.
    assert quoted[0] == (
        "In his 2009 presentation “Null References: The Billion Dollar Mistake,” Tony Hoare, "
        "the inventor of null, had this to say: “I call it my billion-dollar mistake.”"
    )
    assert quoted[1].startswith("“At that time, I was designing")
    assert quoted[1].endswith("”")
    assert not any(text.startswith("“I call it") for text in quoted)  # quoted once
    # A block quote no lead-in introduces is the book's own note, quoted as it is.
    assert quoted[-1].startswith("Note: Rust does not have nulls")
    text = extractive_answer(question="What did Tony Hoare call null?", sources=[HOARE])
    assert text.startswith(
        "In his 2009 presentation “Null References: The Billion Dollar Mistake,” Tony Hoare, "
        "the inventor of null, had this to say: “I call it my billion-dollar mistake.” [4]"
    )


@pytest.mark.parametrize(
    ("question", "quantity", "person"),
    [
        ("How many bytes is a char?", True, False),
        ("When was Unimate introduced?", True, False),
        ("In what year was the term coined?", True, False),
        ("When is a particle filter the better choice?", False, False),  # a condition
        ("Who coined the term object-oriented programming?", False, True),
        ("The book was written by whom?", False, True),
        ("What do people who write Rust use to format code?", False, False),
    ],
)
def test_which_questions_ask_for_a_number_or_a_date_and_which_for_a_name(
    question, quantity, person
):
    read = scoring._question(question)
    assert (read.quantity, read.person) == (quantity, person)


def test_a_who_question_opens_with_the_sentence_that_names_someone_new():
    # Both sentences hold "null"; the one that opens the answer names who. Without the
    # name, the book's own sentence about null would (measured on the Rust book).
    text = extractive_answer(question="Who invented null?", sources=[HOARE])
    assert text.startswith("In his 2009 presentation “Null References: The Billion Dollar")
    assert "However, the concept that null" in text
    # A name the question gives is no answer to it.
    designing = source(2, "At that time, Tony Hoare was designing a type system for references.")
    sentences = scoring._gather([designing])[0]
    for question, names_someone in (("Who hired Tony Hoare?", False), ("Who invented it?", True)):
        context = scoring._context(sentences, {}, None, question)
        assert scoring._features(sentences[0], context)[9] == float(names_someone)
