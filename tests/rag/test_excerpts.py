"""The line of a listing that answers: which line, what says what it does, how it leads."""

from __future__ import annotations

import pytest

from ragsite.rag.excerpts import _lines, asks_for_value, best_excerpt
from ragsite.rag.extractive import extractive_answer
from ragsite.rag.passages import content_words, one_line, quotable_sentences
from tests.rag.test_extractive import source

# Shaped after the robotics textbook's Jetson chapter: the answer is a command in a
# listing, under the comment that says what it does.
POWER = source(
    1,
    "The Jetson Orin Nano supports several power modes. Choose the mode that fits "
    "your battery and thermal budget.\n\n"
    "```bash\n"
    "# List all available power modes\n"
    "sudo nvpmodel -q\n\n"
    "# Set maximum performance mode\n"
    "sudo nvpmodel -m 0\n\n"
    "# Lock the clocks at their maximum\n"
    "sudo jetson_clocks\n"
    "```\n",
    title="Power Management",
)
# A class whose defaults are the answer: no prose says them.
TRACKER = source(
    1,
    "The tracker follows objects across frames with one of OpenCV's trackers.\n\n"
    "```python\n"
    "class ObjectTracker:\n"
    '    """Track objects across video frames"""\n\n'
    "    def __init__(self, tracker_type='csrt', max_lost=30):\n"
    "        self.trackers = {}\n"
    "        self.tracker_type = tracker_type\n"
    "        self.max_lost = max_lost  # frames an object may vanish\n\n"
    "    def create_tracker(self):\n"
    '        """Create a tracker instance"""\n'
    "        if self.tracker_type == 'csrt':\n"
    "            return cv2.TrackerCSRT_create()\n"
    "        return cv2.TrackerKCF_create()\n"
    "```\n",
    title="Object Tracking",
)


def weights_for(question: str) -> dict[str, float]:
    return dict.fromkeys(content_words(question), 1.0)


def test_a_line_is_read_with_the_comment_above_it_and_its_own():
    lines = {
        line.code.strip(): line
        for line in _lines(POWER.chunk.body.split("```bash\n")[1].split("```")[0], "bash")
    }
    assert set(lines) == {"sudo nvpmodel -q", "sudo nvpmodel -m 0", "sudo jetson_clocks"}
    assert lines["sudo nvpmodel -m 0"].comment == "Set maximum performance mode"
    assert "maximum" in lines["sudo nvpmodel -m 0"].words
    code = "x = compute()\nmax_lost = 30  # frames an object may vanish\nrate = 5  # hz\n"
    found = {line.code: line for line in _lines(code, "python")}
    assert found["max_lost = 30"].comment == "frames an object may vanish"
    assert found["rate = 5"].comment == ""  # one word says nothing on its own
    assert found["rate = 5"].literal
    assert not found["x = compute()"].literal


def test_a_docstring_says_what_its_def_does_and_a_shell_sessions_output_is_no_line():
    code = TRACKER.chunk.body.split("```python\n")[1].split("```")[0]
    lines = {line.code.strip(): line for line in _lines(code, "python")}
    assert lines["class ObjectTracker:"].comment == "Track objects across video frames"
    assert lines["def create_tracker(self):"].comment == "Create a tracker instance"
    assert "Track objects across video frames" not in lines  # a docstring is no code line
    session = "$ cargo new hello\n     Created binary (application) `hello` package\n$ cd hello"
    assert [line.code for line in _lines(session, "console")] == ["cargo new hello", "cd hello"]


def test_the_best_line_is_the_one_that_names_the_question():
    question = "How do I switch the Jetson to maximum performance mode?"
    code = POWER.chunk.body.split("```bash\n")[1].split("```")[0]
    excerpt = best_excerpt([(code, "bash", 0)], weights_for(question), question)
    assert excerpt is not None
    assert excerpt.line.code == "sudo nvpmodel -m 0"
    assert excerpt.inline() == "sudo nvpmodel -m 0"
    assert excerpt.distinct
    # Nothing of the question in any line: no excerpt.
    assert best_excerpt([(code, "bash", 0)], weights_for("Why is the sky blue?"), "") is None


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("Which tracker does the object tracker use by default?", True),
        ("What gain does the controller use?", True),
        ("How many threads does the executor start?", True),
        ("What is a tracker?", False),
        ("How do I build the workspace?", False),
    ],
)
def test_a_value_question_is_told_from_a_definition(question, value):
    assert asks_for_value(question) is value


def test_a_command_in_a_listing_opens_the_answer_after_its_comment():
    text = extractive_answer(
        question="How do I switch the Jetson to maximum performance mode?", sources=[POWER]
    )
    assert text.startswith("Set maximum performance mode: `sudo nvpmodel -m 0` [1].")
    # The listing follows, fenced as in the book, for the commands around it.
    assert "```bash\n# List all available power modes\nsudo nvpmodel -q" in text


def test_a_value_set_in_code_answers_a_value_question():
    servo = source(
        2,
        "Visual servoing closes the loop with camera feedback.\n\n"
        "```python\n"
        "class VisualServoing:\n"
        "    def __init__(self, camera_model):\n"
        "        self.camera = camera_model\n"
        "        self.lambda_gain = 0.1  # Control gain\n"
        "        self.error_threshold = 5.0  # pixels\n"
        "```\n",
        title="Visual Servoing",
    )
    text = extractive_answer(
        question="What control gain does the visual servoing controller use?", sources=[servo]
    )
    assert text.startswith("Control gain: `self.lambda_gain = 0.1` [2].")
    assert "```python\nclass VisualServoing:" in text  # the listing follows


def test_a_header_line_leads_with_its_block():
    text = extractive_answer(
        question="Which tracker_type does the tracker create by default?", sources=[TRACKER]
    )
    first = text.split("\n\n")[0]
    assert "`" not in first
    assert first.endswith("[1]:")
    assert "```python\nclass ObjectTracker:" in text
    assert "tracker_type='csrt'" in text


def test_a_definition_question_is_answered_by_prose_not_by_a_line():
    text = extractive_answer(question="What is an object tracker?", sources=[TRACKER])
    assert text.startswith("The tracker follows objects across frames")


def test_one_line_blocks_are_quoted_in_the_sentence_that_announces_them():
    assert one_line("$ cargo fmt\n", "console") == ("cargo fmt", False)
    assert one_line("$ cargo run\n   Compiling hello\nHello, world!\n", "console") == (
        "cargo run",
        True,
    )
    assert one_line("let x = 5;\nlet y = 6;\n", "rust") is None
    quoted = quotable_sentences(
        "To format any Cargo project, enter the following:\n\n```console\n$ cargo fmt\n```\n\n"
        "Build it again, and you'll see only two lines of output:\n\n"
        "```console\n$ cargo build\n    Finished dev\n```\n"
    )
    assert "To format any Cargo project, enter the following: `cargo fmt`" in quoted
    # With output after it, the lead-in may announce the output: it is not quoted.
    assert not any(text.startswith("Build it again") for text in quoted)


def test_a_definition_that_sets_defaults_is_quoted_inline():
    maml = source(
        1,
        "MAML learns an initialisation that adapts to a new task in a few steps.\n\n"
        "```python\n"
        "class MAML:\n"
        "    def __init__(self, model, inner_lr=0.01, outer_lr=0.001):\n"
        "        self.model = model\n"
        "        self.inner_lr = inner_lr\n"
        "```\n",
        title="Meta-Learning",
    )
    text = extractive_answer(
        question="What inner and outer learning rates does the MAML class use?", sources=[maml]
    )
    assert text.startswith("`def __init__(self, model, inner_lr=0.01, outer_lr=0.001):` [1].")


def test_a_one_line_block_quoted_in_its_introduction_is_not_shown_again():
    alias = source(
        1,
        "Rust provides the ability to declare a type alias to give an existing type another "
        "name. For example, we can create the alias `Kilometers` to `i32` like so:\n\n"
        "```rust\n    type Kilometers = i32;\n```\n\n"
        "Now the alias `Kilometers` is a synonym for `i32`.",
        title="Type Aliases",
    )
    text = extractive_answer(
        question="How do I give an existing type another name?", sources=[alias]
    )
    assert text.count("type Kilometers = i32;") == 1
    assert "like so: `type Kilometers = i32;` [1]." in text
    assert "```" not in text


def test_an_inlined_block_brought_in_with_its_introduction_is_not_shown_again():
    # The block is chosen, its introduction is not: the introduction joins the answer
    # after the lead (as any block's does), and quotes the line in place of the block.
    from ragsite.rag.extractive import _paragraphs, _prepare

    alias = source(
        1,
        "Rust provides the ability to declare a type alias to give an existing type another "
        "name. For example, we can create the alias `Kilometers` to `i32` like so:\n\n"
        "```rust\n    type Kilometers = i32;\n```\n",
        title="Type Aliases",
    )
    sentences, codes, weights = _prepare("How do I alias a type?", [alias])
    (block,) = codes
    assert block.inlined
    lead = next(s for s in sentences if s.text.startswith("Rust provides"))
    text = "\n\n".join(_paragraphs([(0.9, lead)], sentences, block, weights))
    assert text == (
        "Rust provides the ability to declare a type alias to give an existing type another "
        "name [1]. For example, we can create the alias `Kilometers` to `i32` like so: "
        "`type Kilometers = i32;` [1]."
    )


def test_comment_lines_read_as_sentences_and_labelled_lines_as_statements():
    code = (
        "def detect_waving(self, hand):\n"
        '    """Detect waving gesture (simplified)"""\n'
        "    # This would require temporal analysis\n"
        "    # For now, check if hand is open and raised\n"
        "    raised = hand.wrist.y < hand.middle_tip.y\n"
    )
    lines = {line.code.strip(): line for line in _lines(code, "python")}
    assert lines["raised = hand.wrist.y < hand.middle_tip.y"].comment == (
        "Detect waving gesture (simplified). This would require temporal analysis. "
        "For now, check if hand is open and raised"
    )
    # Labelled lines, one under another, are one statement each; a task box is no text.
    quoted = quotable_sentences(
        "Estimated Setup Time: 4-6 hours for the whole workstation\n"
        "Difficulty Level: Intermediate, with some Linux experience\n\n"
        "- [ ] Ubuntu 22.04 LTS installed and updated\n"
        "- [x] ROS 2 Humble installed with development tools\n"
    )
    assert quoted[:2] == [
        "Estimated Setup Time: 4-6 hours for the whole workstation",
        "Difficulty Level: Intermediate, with some Linux experience",
    ]
    assert "Ubuntu 22.04 LTS installed and updated" in quoted
    assert not any(text.startswith("[") for text in quoted)


def test_a_lowercase_comment_opens_its_line_as_a_sentence():
    # From the Rust book (ch03-02): the comment that says what the line does.
    booleans = source(
        2,
        "As in most other programming languages, a Boolean type in Rust has two possible "
        "values: `true` and `false`. Booleans are one byte in size.\n\n"
        "```rust\nfn main() {\n    let t = true;\n\n"
        "    let f: bool = false; // with explicit type annotation\n}\n```\n",
        title="Data Types > The Boolean Type",
    )
    text = extractive_answer(
        question="How do I annotate a bool variable's type explicitly?", sources=[booleans]
    )
    assert "With explicit type annotation: `let f: bool = false;` [2]." in text
