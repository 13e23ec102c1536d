"""Cutting a chunk body into quotable units: what a sentence of the book is.

The extractive answerer quotes these units and ingestion embeds them (sentences.py), so
both see exactly the same sentences. A body is cut into *units*: prose sentences (a
sentence never ends inside brackets or parentheses), list items, table rows (one
statement each, the cells named by the header) and fenced code blocks, kept verbatim
with the sentence that introduces them. Markdown, MDX and HTML markup are dropped;
inline code keeps its backticks, so `Rc<T>` stays `Rc<T>`. Of the prose units,
`_prose_candidates` gives the ones an answer may quote: a sentence ending in a colon is
one unit with the list it introduces; title-like lines, captions, the book's own
questions and lead-ins that say nothing without their block ("... by running:") are
left out.

`content_words` gives a text's stemmed content words. Cutting and word sets are memoised
per text (TEXT_MEMO_SIZE): the same chunks come back as sources.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence

from .sparse import fold

MIN_SENTENCE_CHARS = 25
MIN_SENTENCE_WORDS = 4
MAX_SENTENCE_CHARS = 400
# A lead-in is quoted with at most this many of its items (or a table's rows). At 8, the
# textbook's "Run SDK Manager: ... select:" list lost its last item's "This typically
# takes 30-45 minutes"; 12 made answers 2 % longer there and lost nothing.
MAX_LIST_ITEMS = 12
# How many sentences' analyses (words, form) are memoised; chunks' units an eighth of it.
TEXT_MEMO_SIZE = 16_384

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves explain tell describe please mean means meaning use used using
    book chapter""".split()
)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "fig.", "eq.", "dr.", "mr.", "ms.", "no.")

_FRONT_MATTER = re.compile(r"\A\s*---\n.*?\n---[ \t]*(\n|\Z)", re.DOTALL)
_FENCE = re.compile(
    r"^[ \t]*(?P<marker>```+|~~~+)[ \t]*(?P<info>[^\n]*)\n(?P<code>.*?)^[ \t]*(?P=marker)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
# An HTML/MDX tag stands on its own ("<Tabs>", "</div>"); "Vec<String>" and "Rc<T>"
# follow an identifier and are generic types, not tags.
_HTML_TAG = re.compile(r"(?<![\w:])</?[A-Za-z][\w.-]*(?:\s[^<>\n]*)?/?>")
_MDX_LINE = re.compile(r"^\s*(import|export)\s.*$", re.MULTILINE)
_ADMONITION = re.compile(r"^\s*:::\s*\w*.*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_LINK_DEFINITION = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
# Underscores only emphasise at word edges (CommonMark), so snake_case identifiers survive.
_EMPHASIS = re.compile(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")
_INLINE_CODE = re.compile(r"`+([^`\n]+?)`+")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")  # and a task box
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[`\x00]?[A-Z0-9\x00`])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CITATION = re.compile(r"\[\d+\]")
_CODE_SPAN = re.compile(r"`[^`]*`")
_NOT_LETTER = re.compile(r"[^\w\s]|_")
_CAPTION = re.compile(r"^(?:figure|fig\.|listing|table|filename)\s*[A-Z]?[\d:-]", re.IGNORECASE)
# A lead-in that is no sentence without what follows it ("enter the following command:").
_INCOMPLETE = re.compile(
    r"\b(?:following|follows|this|these|here|below|like|as|by|with|to|run|running|is|are|"
    r"command|commands|code|output|example|listing|shown|see|type|enter|appears?|prints?|"
    r"shows?|looks?|get|gives?|produces?|says?)\s*:$",
    re.IGNORECASE,
)
# ... unless it states something before it points at its block: "A string slice is a
# reference to ... of a `String`, and it looks like this:", "... annotate them with the
# `ignore` attribute, as shown here:". The statement is quoted alone when the block is not
# (`lead_in_statement`). Such lead-ins state the answer to 4 of the Rust book's questions.
_POINTER = re.compile(
    r"(?:,\s*(?:and\s+)?(?:it|they|this|that|which)\s+(?:looks?|reads?|works?)\s+"
    r"(?:something\s+)?like\s+(?:this|so)|,?\s+as\s+(?:follows|shown(?:\s+(?:here|below|"
    r"in\s+(?:this|the\s+following)\s+\w+))?)|,\s*like\s+(?:this|so))\s*:$",
    re.IGNORECASE,
)
# What a statement does not end with: it would need what the pointer points at.
_DANGLING = re.compile(
    r"\b(?:is|are|was|were|be|been|defined|written|declared|done|used|implemented|looks?|"
    r"goes|go|works?|shown|appears?|this|that|it)$",
    re.IGNORECASE,
)
MIN_STATEMENT_WORDS = 8


def lead_in_statement(text: str) -> str:
    """What a lead-in states before it points at its block ("..., as shown here:"), as a
    sentence; "" when it states nothing alone."""
    match = _POINTER.search(text)
    if match is None:
        return ""
    head = text[: match.start()].rstrip(" ,;")
    if len(head.split()) < MIN_STATEMENT_WORDS or _DANGLING.search(head):
        return ""
    if _INCOMPLETE.search(head + ":"):
        return ""
    return head + "."


def _stem(word: str) -> str:
    """Fold common endings so 'measure', 'measures', 'measured' and 'measuring' match."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if suffix == "s" and word.endswith("ss"):  # "class", not a plural
            break
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if word.endswith("e") and len(word) > 3:  # "measure" -> "measur", like "measures"
        word = word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Return the stemmed, lowercased words of a text that carry meaning."""
    return set(_content_words(text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _content_words(text: str) -> frozenset[str]:
    return frozenset(
        _stem(word)
        for word in _WORD.findall(fold(text))
        if word not in STOPWORDS and (len(word) > 2 or word.isdigit())
    )


def _clean_markdown(text: str) -> str:
    """Drop MDX/HTML and Markdown markup from prose, keeping inline code in backticks."""
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(1).strip())
        return f"\x00{len(spans) - 1}\x00"

    text = _INLINE_CODE.sub(hide, text)  # nothing below may touch code
    text = _MDX_LINE.sub("", text)
    text = _ADMONITION.sub("", text)
    text = _IMAGE.sub("", text)
    text = _LINK_DEFINITION.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), text)
    text = _CITATION.sub("", text)  # a quoted "[2]" from the book would pose as our citation
    return _PLACEHOLDER.sub(lambda m: f"`{spans[int(m.group(1))]}`", text)


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE)
def _looks_like_prose(sentence: str, unit: str = "text") -> bool:
    """Reject headings, table rules, code-ish and very short fragments."""
    if len(sentence) < MIN_SENTENCE_CHARS or len(sentence.split()) < MIN_SENTENCE_WORDS:
        return False
    if unit != "row" and (sentence.startswith(("#", "|", ">")) or sentence.count("|") >= 2):
        return False
    plain = _CODE_SPAN.sub("x", sentence)
    symbols = len(_NOT_LETTER.findall(plain))
    return 1 - symbols / max(len(plain), 1) >= (0.7 if unit == "row" else 0.85)


def _depth_change(text: str) -> int:
    return (
        text.count("(") - text.count(")") + text.count("[") - text.count("]") + text.count("`") % 2
    )


def _split_part(part: str) -> list[str]:
    """Split one paragraph or list item into sentences, never inside brackets."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(part):
        candidate = part[start : match.start()].rstrip()
        last_word = candidate.rsplit(maxsplit=1)[-1].lower() if candidate else ""
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last_word):
            continue  # "e.g. The" or an initial: not a sentence end
        if _depth_change(part[start : match.end()].rstrip()) > 0:
            continue  # inside "( ... )", "[ ... ]" or a code span
        pieces.append(part[start : match.end()].strip())
        start = match.end()
    pieces.append(part[start:].strip())
    return [piece for piece in pieces if piece]


def _table_row(cells: list[str], header: list[str]) -> str:
    """A table row as one statement: 'Depth Range: 0.2m - 10m' or 'USB: Symptoms: ...; Fix: ...'."""
    cells = [cell.strip() for cell in cells]
    if not cells or not cells[0]:
        return ""
    rest = [
        f"{name}: {cell}" if name and len(cells) > 2 else cell
        for name, cell in zip(header[1:] or [""] * (len(cells) - 1), cells[1:], strict=False)
        if cell
    ]
    if not rest:
        return ""
    text = f"{cells[0]}: {'; '.join(rest)}"
    return text if text.endswith((".", "!", "?")) else text + "."


def _table_cells(line: str) -> list[str]:
    return line.strip().strip("|").split("|")


# "Includes: Jetson Orin Nano, Intel RealSense D435i": a label and what it says, however
# many capitalised names it holds.
_LABELLED = re.compile(r"^[^:]{2,40}:\s+\S+(?:\s+\S+)+")


# A line that opens with a short label ("Prerequisites: NVIDIA RTX GPU, Ubuntu 22.04"): a
# run of them is a list written as lines (bold labels a page shows one under another,
# "**Support Level**: Advanced"), one statement each, not one sentence.
_QUOTE_MARKER = re.compile(r"^(?:>\s?)+")
_LABEL_LINE = re.compile(r"^[A-Z][\w /&()+-]{1,40}:\s+\S")


def _heading_like(part: str) -> bool:
    """A bold line or title standing alone ("Install Latest Production Driver")."""
    if part.rstrip().endswith((".", "!", "?", ":", ";", ")", "`", '"', "”", "…")):
        return False
    if _LABELLED.match(part):
        return False
    words = [w for w in part.split() if w[:1].isalpha()]
    capitalised = sum(1 for w in words if w[0].isupper())
    return not words or capitalised / len(words) >= 0.6


def _prose_units(prose: str) -> list[tuple[str, str]]:
    """Split Markdown prose into ("text" | "item" | "row", sentence) units, in order.

    A paragraph's sentences are "text"; each sentence of a list item is an "item"; a
    table row is one "row", its cells named by the header ("Range: 0.2-10 m.").
    Headings and title-like lines are left out.
    """
    units: list[tuple[str, str]] = []
    for block in re.split(r"\n\s*\n", _clean_markdown(prose)):
        for kind, part in _block_parts(block):
            part = " ".join(part.split())
            if not part:
                continue
            if kind == "row":
                units.append((kind, part))
            elif _heading_like(part):
                continue
            else:
                units.extend((kind, sentence) for sentence in _split_part(part))
    return units


def _block_parts(block: str) -> list[tuple[str, str]]:
    """A block of prose (no blank line in it) as ("text" | "item" | "row" | "quote", text)
    parts: its paragraphs, list items, table rows, labelled lines, or the block quote it is."""
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    labelled = [bool(_LABEL_LINE.match(line)) for line in lines]
    buffer: list[str] = []
    parts: list[tuple[str, str]] = []
    header: list[str] = []

    def close(*part: tuple[str, str]) -> None:
        """End the paragraph being gathered; then add `part`, if given."""
        if buffer:
            parts.append(("text", " ".join(buffer)))
            buffer.clear()
        parts.extend(part)

    if lines and lines[0].startswith(">"):
        # A block quote: someone's words (introduced by "... had this to say:") or the
        # book's own note ("> Note: ..."); its lines without their markers.
        return [("quote", " ".join(_QUOTE_MARKER.sub("", line) for line in lines))]
    for index, line in enumerate(lines):
        if line.startswith("|"):
            close()
            if re.fullmatch(r"[|:\-\s]+", line):
                continue  # the separator under the header
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if re.fullmatch(r"\|?[|:\-\s]+", following) and "-" in following:
                header = [cell.strip() for cell in _table_cells(line)]
                continue
            parts.append(("row", _table_row(_table_cells(line), header)))
        elif line.startswith("#"):
            close()
        elif _LIST_MARKER.match(line):
            close(("item", _LIST_MARKER.sub("", line)))
        elif parts and parts[-1][0] == "item" and not buffer:
            parts[-1] = ("item", f"{parts[-1][1]} {line}")  # a list item's wrapped line
        elif labelled[index] and (
            (index > 0 and labelled[index - 1]) or labelled[index + 1 : index + 2] == [True]
        ):
            close(("text", line))  # one of a run of labelled lines, one under another
        else:
            buffer.append(line)
    close()
    return parts


def _prose_sentences(prose: str) -> list[str]:
    """Split Markdown prose into sentences (each list item and paragraph stands alone)."""
    return [text for _, text in _prose_units(prose)]


def split_sentences(text: str) -> list[str]:
    """Split a passage's prose into sentences (code blocks left out)."""
    text = _FRONT_MATTER.sub("", text)
    return _prose_sentences(_FENCE.sub("\n\n", text))


@functools.lru_cache(maxsize=TEXT_MEMO_SIZE // 8)  # the same chunks come back as sources
def _units(body: str) -> tuple[tuple[str, str, str], ...]:
    """Cut a body into (kind, text, info) units in order: "text", "item" and "row" prose
    sentences, and ("code", code, fence info) blocks."""
    body = _FRONT_MATTER.sub("", body)
    units: list[tuple[str, str, str]] = []
    start = 0
    for match in _FENCE.finditer(body):
        units.extend((k, s, "") for k, s in _prose_units(body[start : match.start()]))
        code = match.group("code").rstrip("\n")
        if code.strip():
            units.append(("code", code, match.group("info").strip()))
        start = match.end()
    units.extend((k, s, "") for k, s in _prose_units(body[start:]))
    return tuple(units)


def _shorten(sentence: str) -> str:
    """Cut an over-long sentence at a clause boundary outside brackets and code."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    best = -1
    for match in re.finditer(r"[,;:] ", sentence[:MAX_SENTENCE_CHARS]):
        if _depth_change(sentence[: match.start()]) == 0:
            best = match.start()
    if best < MAX_SENTENCE_CHARS // 3:
        best = -1
        for match in re.finditer(r" ", sentence[:MAX_SENTENCE_CHARS]):
            if _depth_change(sentence[: match.start()]) == 0:
                best = match.start()
    if best <= 0:
        return sentence  # no safe place to cut: whole is better than broken
    return sentence[:best].rstrip(",;: ") + "…"


# A shell prompt ("$ cargo new", "> dir", "user@host:~$ ls") and the fence infos of
# shell sessions, whose other lines are the program's output.
SHELL_PROMPT = re.compile(r"^\s*(?:\$|>|PS>|\w+@[\w.-]+:[^$#]*[$#])\s+")
SHELL_INFOS = frozenset(
    {"", "console", "shell", "sh", "bash", "zsh", "text", "terminal", "powershell", "ps1"}
)
# A one-line block is quoted inline in the sentence that introduces it up to this length.
MAX_INLINE_CODE_CHARS = 100


def shell_session(code: str, info: str) -> bool:
    """A block of commands after a prompt ("$ cargo run") and their output."""
    return info.split(",")[0].strip().lower() in SHELL_INFOS and any(
        SHELL_PROMPT.match(line) for line in code.splitlines()
    )


def shell_command(line: str) -> str | None:
    """A shell session's line without its prompt; None for the program's output."""
    return SHELL_PROMPT.sub("", line) if SHELL_PROMPT.match(line) else None


def inline_quotable(code: str) -> bool:
    """Whether a line of code can be quoted in backticks inside a sentence."""
    return bool(code) and len(code) <= MAX_INLINE_CODE_CHARS and "`" not in code


def one_line(code: str, info: str) -> tuple[str, bool] | None:
    """The block's only line of code, prompt dropped, and whether output follows it;
    None when it has more (or a line too long to quote inline)."""
    lines = [line for line in code.splitlines() if line.strip()]
    output = False
    if shell_session(code, info):
        commands = [c for c in map(shell_command, lines) if c is not None]
        output = len(commands) < len(lines)
        lines = commands
    if len(lines) != 1 or not inline_quotable(line := lines[0].strip()):
        return None
    return line, output


def with_inline_code(text: str, units: Sequence[tuple[str, str, str]], position: int) -> str:
    """A lead-in to a one-line block with the line quoted in it: "To format any Cargo
    project, enter the following: `cargo fmt`" (a sentence alone, where "... the
    following:" says nothing without its block)."""
    if not text.endswith(":") or position + 1 >= len(units) or units[position + 1][0] != "code":
        return text
    found = one_line(units[position + 1][1], units[position + 1][2])
    if found is None or found[1]:
        return text  # (with output after it, the lead-in may introduce the output)
    return f"{text[:-1].rstrip()}: `{found[0]}`"


def _prose_candidates(
    units: Sequence[tuple[str, str, str]],
) -> Iterator[tuple[int, str, str, tuple[str, ...]]]:
    """The prose units an answer may quote: (position, kind, text, the items a lead-in
    introduces). A lead-in to a one-line block quotes the line (`with_inline_code`); one
    to a quotation quotes its first sentence ("Tony Hoare ... had this to say: “I call it
    my billion-dollar mistake.”"), and the quotation's sentences are quoted as its words,
    in quotation marks."""
    attributed = False  # the units before are a quotation and its lead-in
    for position, (kind, text, _) in enumerate(units):
        previous = units[position - 1] if position else ("", "", "")
        following = units[position + 1] if position + 1 < len(units) else ("", "", "")
        introduced = kind == "quote" and previous[0] not in {"quote", "code"}
        introduced = introduced and previous[1].endswith(":")
        attributed = introduced or (attributed and kind == "quote")
        if kind == "code" or introduced:
            continue  # a block, or the sentence its lead-in quotes
        if attributed:
            text = f"“{text.strip('“”')}”"
        elif text.endswith(":") and following[0] == "quote":
            quoted = f"{text} “{following[1].strip('“”')}”"
            text = quoted if len(quoted) <= MAX_SENTENCE_CHARS else text
        text = with_inline_code(text, units, position)
        items: tuple[str, ...] = ()
        if text.endswith(":"):
            # A lead-in: it is quoted with the list it introduces, or alone (a block it
            # introduces is shown with it when the block is chosen).
            for later_kind, later_text, _ in units[position + 1 :]:
                if later_kind != "item" or len(items) >= MAX_LIST_ITEMS:
                    break
                items += (later_text,)
        if not _looks_like_prose(text, kind):
            continue
        if not items and _INCOMPLETE.search(text) and not lead_in_statement(text):
            continue  # "... by running:" says nothing without its block
        if _CAPTION.match(text) or text.endswith("?"):
            continue  # a caption, or the book's own (rhetorical or exercise) question
        yield position, kind, text, items


def quotable_sentences(body: str) -> list[str]:
    """The prose sentences of a chunk body an answer may quote, as `scoring._gather` gives
    them (ingestion stores a vector for each: ragsite/rag/sentences.py)."""
    return [_shorten(text) for _, _, text, _ in _prose_candidates(_units(body))]
