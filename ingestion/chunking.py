"""Cutting a parsed page into chunks that fit the embedding model's window.

Pure functions, no Django and no I/O. A chunk never crosses into a section it does not
start in, except when a tiny leftover merges into a neighbour; every chunk's full
`text` (breadcrumb line + body, with the model's [CLS]/[SEP]) is at most `max_tokens`,
so the embedder never silently truncates. docs/ingestion.md ("How a page becomes
chunks") gives the rules and the reasons for the defaults.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ragsite.rag.types import Chunk, chunk_id, sha256_text

from .markdown import Block, ParsedPage, Section, parse_page, section_url
from .sites import Site

# Bump when the same page and settings would give different chunks, so the ingestion
# services can tell that unchanged pages need chunking (and embedding) again.
# 2: a paragraph's line that opens in bold stays a line of its own (`markdown._inline_text`).
CHUNKER_VERSION = 2

# A chunk whose own content (overlap excluded) has fewer tokens than this is merged
# into a neighbour: "## Summary" plus one line retrieves badly on its own.
MIN_CHUNK_TOKENS = 24
# The breadcrumb line may take at most this share of a chunk; deeper paths are shortened.
MAX_BREADCRUMB_SHARE = 0.5
BREADCRUMB_SEPARATOR = " > "
MAX_REPACK_ATTEMPTS = 8
# Below this many tokens of room for the body, a chunk limit is unusable.
MIN_BODY_TOKENS = 8

CHUNK_LIMIT_TOO_SMALL_MESSAGE = (
    "max_tokens={max_tokens} leaves no room for the text of page {path!r}; raise CHUNK_TOKENS."
)

# Kinds whose trailing sentences are carried into the next chunk as overlap.
_PROSE_KINDS = frozenset({"paragraph", "quote", "admonition"})
# Whitespace after a sentence end, which may be followed by a closing quote or bracket.
_SENTENCE_END_RE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
_LIST_ITEM_RE = re.compile(r"^(?:[-*+]|\d+[.)]) ", re.MULTILINE)
_FENCE_RE = re.compile(r"^(?P<indent>[ \t]*(?:(?:[-*+]|\d+[.)]) )?)(?P<fence>`{3,}|~{3,})")
# Prose is cut at the coarsest boundary that works: paragraphs, lines, sentences, words.
_PROSE_SPLITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n\s*\n"), "\n\n"),
    (re.compile(r"\n"), "\n"),
    (_SENTENCE_END_RE, " "),
    (re.compile(r"[ \t]+"), " "),
)

CountTokens = Callable[[str], int]


class _Counter:
    """Counts tokens in batches, once per distinct text.

    `content()` is the count without the model's special tokens, which is additive over
    whitespace-joined texts for a WordPiece tokenizer: that is what lets the packer add
    pieces up instead of re-encoding every candidate chunk.
    """

    def __init__(self, count_tokens: CountTokens | None) -> None:
        if count_tokens is None:
            from ragsite.rag.tokens import count_tokens_batch  # loads the tokenizer lazily

            self._batch: Callable[[Sequence[str]], list[int]] = count_tokens_batch
            self.additive = True
        else:
            self._batch = lambda texts: [count_tokens(text) for text in texts]
            self.additive = False  # an unknown ruler: every chunk is counted whole
        self._cache: dict[str, int] = {}
        self.special = self.counts([""])[0]

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Return the full token count of each text (special tokens included)."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            self._cache.update(zip(missing, self._batch(missing), strict=True))
        return [self._cache[text] for text in texts]

    def content(self, texts: Sequence[str]) -> list[int]:
        """Return each text's token count without the special tokens."""
        return [max(0, count - self.special) for count in self.counts(texts)]

    def one(self, text: str) -> int:
        """Return one text's content token count."""
        return self.content([text])[0]


@dataclass(frozen=True)
class _Piece:
    """A unit of a chunk body: a block or part of one, with its content token count."""

    kind: str
    text: str
    tokens: int


@dataclass
class _Draft:
    """A chunk being assembled: where it starts, its overlap and its pieces."""

    section: int  # index of the section the chunk starts in (gives heading and URL)
    last_section: int  # index of the section its last piece comes from
    overlap: _Piece | None = None
    pieces: list[_Piece] = field(default_factory=list)

    @property
    def own_tokens(self) -> int:
        return sum(piece.tokens for piece in self.pieces)

    @property
    def tokens(self) -> int:
        return self.own_tokens + (self.overlap.tokens if self.overlap else 0)

    def body(self) -> str:
        parts = ([self.overlap] if self.overlap else []) + self.pieces
        return "\n\n".join(piece.text for piece in parts)


class _Chunker:
    """Splits and packs one page; `slack` shrinks budgets if a counter is not additive."""

    def __init__(
        self,
        page: ParsedPage,
        *,
        max_tokens: int,
        overlap_tokens: int,
        min_tokens: int,
        counter: _Counter,
    ) -> None:
        self.page = page
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.min_tokens = min_tokens
        self.counter = counter
        self.breadcrumbs = [self._breadcrumb(section) for section in page.sections]
        self.budgets: list[int] = []
        self.crumb_tokens: list[int] = []

    # -- breadcrumbs and budgets --

    def _breadcrumb(self, section: Section) -> str:
        """Return "<title> > <heading path>", shortened when it would crowd out the body."""
        title, path = self.page.title, list(section.heading_path)
        candidates = [BREADCRUMB_SEPARATOR.join([title, *path])]
        if len(path) > 1:
            candidates.append(BREADCRUMB_SEPARATOR.join([title, "…", path[-1]]))
        if path:
            candidates.append(BREADCRUMB_SEPARATOR.join(["…", path[-1]]))
        limit = int(self.max_tokens * MAX_BREADCRUMB_SHARE)
        for candidate, tokens in zip(candidates, self.counter.counts(candidates), strict=True):
            if tokens <= limit:
                return candidate
        words = candidates[-1].split()
        while len(words) > 1 and self.counter.counts([" ".join(words)])[0] > limit:
            words = words[: max(1, len(words) * 3 // 4)]
        return " ".join(words)

    def chunks(self, slack: int) -> list[_Draft]:
        """Return the page's drafts, packed to budgets reduced by `slack`."""
        self.crumb_tokens = self.counter.counts([crumb + "\n\n" for crumb in self.breadcrumbs])
        self.budgets = [self.max_tokens - tokens - slack for tokens in self.crumb_tokens]
        # One batch for every block of the page: the packer then reads counts from cache.
        self.counter.counts(
            [block.text for section in self.page.sections for block in section.blocks]
        )
        drafts: list[_Draft] = []
        for index, section in enumerate(self.page.sections):
            blocks = [block for block in section.blocks if block.text.strip()]
            if not blocks:
                continue
            if self.budgets[index] < MIN_BODY_TOKENS:
                raise ValueError(
                    CHUNK_LIMIT_TOO_SMALL_MESSAGE.format(
                        max_tokens=self.max_tokens, path=self.page.path
                    )
                )
            drafts.extend(self._pack_section(index, blocks))
        return self._merge_tiny(drafts)

    # -- splitting blocks into pieces that fit --

    def _is_lead_in(self, piece: _Piece) -> bool:
        """Whether a piece introduces the next one: a heading, "as follows:", a short line."""
        if piece.kind == "heading":
            return True
        return piece.kind in _PROSE_KINDS and (
            piece.text.rstrip().endswith(":") or piece.tokens < self.min_tokens
        )

    def _is_fragment(self, draft: _Draft) -> bool:
        """Whether a chunk is too thin to retrieve well on its own."""
        return draft.own_tokens < self.min_tokens or all(
            self._is_lead_in(piece) for piece in draft.pieces
        )

    def _split(self, block: Block, budget: int, first_budget: int) -> list[tuple[str, int]]:
        """Cut an overlong block; the first part fits `first_budget` (the room left)."""
        if block.kind == "code":
            return self._split_code(block.text, budget, first_budget)
        if block.kind == "table":
            return self._split_table(block.text, budget, first_budget)
        if block.kind == "list":
            return self._split_list(block.text, budget, first_budget)
        # Leave room for the overlap the next part will start with.
        if self.overlap_tokens and budget - self.overlap_tokens >= budget // 2:
            budget -= self.overlap_tokens
        return self._split_prose(block.text, budget, first_budget=first_budget)

    def _pack(
        self,
        parts: Sequence[tuple[str, int]],
        budget: int,
        joiner: str,
        first_budget: int | None = None,
    ) -> list[tuple[str, int]]:
        """Greedily join consecutive parts while their token sum stays within budget.

        The first group is held to `first_budget` (the room left in the chunk being
        filled); if even the first part does not fit there, packing starts afresh.
        """
        packed: list[tuple[str, int]] = []
        texts: list[str] = []
        total = 0
        limit = budget if first_budget is None else min(first_budget, budget)
        for text, tokens in parts:
            if not texts and not packed and tokens > limit:
                limit = budget  # nothing fits in the room left: start a new chunk
            if texts and total + tokens > limit:
                packed.append((joiner.join(texts), total))
                texts, total, limit = [], 0, budget
            texts.append(text)
            total += tokens
        if texts:
            packed.append((joiner.join(texts), total))
        return [(text, tokens) for text, tokens in packed if text.strip()]

    def _split_prose(
        self, text: str, budget: int, level: int = 0, first_budget: int | None = None
    ) -> list[tuple[str, int]]:
        """Cut text at paragraphs, then lines, sentences, words; characters as a last resort."""
        for offset, (pattern, joiner) in enumerate(_PROSE_SPLITS[level:]):
            parts = [part for part in pattern.split(text) if part.strip()]
            if len(parts) >= 2:
                return self._fill(parts, joiner, budget, level + offset + 1, first_budget)
        return self._split_characters(text, budget)

    def _fill(
        self,
        parts: Sequence[str],
        joiner: str,
        budget: int,
        finer: int,
        first_budget: int | None,
    ) -> list[tuple[str, int]]:
        """Pack parts greedily; cut a part at the `finer` level to fill a group under half full.

        So a short paragraph is not left alone in front of a long one, and an overlong
        part is always cut.
        """
        packed: list[tuple[str, int]] = []
        texts: list[str] = []
        total = 0
        limit = budget if first_budget is None else min(first_budget, budget)
        for part, tokens in zip(parts, self.counter.content(parts), strict=True):
            room = limit - total
            if tokens <= room:
                texts.append(part)
                total += tokens
                continue
            if tokens <= budget and (2 * total >= limit or finer >= len(_PROSE_SPLITS)):
                if texts:
                    packed.append((joiner.join(texts), total))
                texts, total, limit = [part], tokens, budget
                continue
            if room < 2 * self.min_tokens:  # too little room to be worth filling
                if texts:
                    packed.append((joiner.join(texts), total))
                texts, total, limit, room = [], 0, budget, budget
            for sub_text, sub_tokens in self._split_prose(part, budget, finer, room):
                if texts and total + sub_tokens > limit:
                    packed.append((joiner.join(texts), total))
                    texts, total, limit = [], 0, budget
                texts.append(sub_text)
                total += sub_tokens
        if texts:
            packed.append((joiner.join(texts), total))
        return [(text, tokens) for text, tokens in packed if text.strip()]

    def _split_characters(self, text: str, budget: int) -> list[tuple[str, int]]:
        """Cut one overlong word (a URL, a hash) into the longest prefixes that fit."""
        pieces: list[tuple[str, int]] = []
        rest = text.strip()
        while rest:
            low, high = 1, len(rest)
            while low < high:  # largest prefix length whose count fits
                middle = (low + high + 1) // 2
                if self.counter.one(rest[:middle]) <= budget:
                    low = middle
                else:
                    high = middle - 1
            pieces.append((rest[:low], self.counter.one(rest[:low])))
            rest = rest[low:]
        return pieces

    def _split_code(
        self, text: str, budget: int, first_budget: int | None = None
    ) -> list[tuple[str, int]]:
        """Cut a fenced block at blank lines, else between lines; each part is fenced again."""
        lines = text.split("\n")
        match = _FENCE_RE.match(lines[0])
        if len(lines) < 3 or match is None:
            return self._split_prose(text, budget, level=1, first_budget=first_budget)
        opening, closing = lines[0], lines[-1]
        fence_tokens = self.counter.one(f"{opening}\n{closing}")
        inner_budget = budget - fence_tokens
        if inner_budget < 1:
            return self._split_prose(text, budget, level=1, first_budget=first_budget)
        first_inner = None if first_budget is None else first_budget - fence_tokens
        body = "\n".join(lines[1:-1])
        return [
            (f"{opening}\n{part}\n{closing}", tokens + fence_tokens)
            for part, tokens in self._split_prose(body, inner_budget, first_budget=first_inner)
        ]

    def _split_table(
        self, text: str, budget: int, first_budget: int | None = None
    ) -> list[tuple[str, int]]:
        """Cut a table between rows, repeating its header row (and separator) in each part."""
        lines = text.split("\n")
        has_header = len(lines) > 2 and re.fullmatch(r"\|(?: -+ \|)+", lines[1]) is not None
        header = "\n".join(lines[:2]) if has_header else ""
        header_tokens = self.counter.one(header) if header else 0
        row_budget = budget - header_tokens
        if not header or row_budget < budget // 4:
            return self._split_prose(text, budget, level=1, first_budget=first_budget)
        rows = lines[2:]
        parts: list[tuple[str, int]] = []
        for row, tokens in zip(rows, self.counter.content(rows), strict=True):
            if tokens <= row_budget:
                parts.append((row, tokens))
            else:
                parts.extend(self._split_prose(row, row_budget, level=2))
        first_rows = None if first_budget is None else first_budget - header_tokens
        return [
            (f"{header}\n{rows_text}", tokens + header_tokens)
            for rows_text, tokens in self._pack(parts, row_budget, "\n", first_rows)
        ]

    def _split_list(
        self, text: str, budget: int, first_budget: int | None = None
    ) -> list[tuple[str, int]]:
        """Cut a list between top-level items; an overlong item is cut around its code."""
        starts = [match.start() for match in _LIST_ITEM_RE.finditer(text)] or [0]
        starts[0] = 0
        ends = [*starts[1:], len(text)]
        items = [text[start:end].rstrip("\n") for start, end in zip(starts, ends, strict=True)]
        parts: list[tuple[str, int]] = []
        for item, tokens in zip(items, self.counter.content(items), strict=True):
            if tokens <= budget:
                parts.append((item, tokens))
            else:
                parts.extend(self._split_mixed(item, budget))
        return self._pack(parts, budget, "\n", first_budget)

    def _split_mixed(self, text: str, budget: int) -> list[tuple[str, int]]:
        """Cut text that may hold fenced code (a list item) without cutting the code."""
        segments: list[tuple[bool, str]] = []
        lines = text.split("\n")
        index = 0
        prose: list[str] = []
        while index < len(lines):
            match = _FENCE_RE.match(lines[index])
            if match is None:
                prose.append(lines[index])
                index += 1
                continue
            fence = match["fence"]
            end = index + 1
            while end < len(lines) and not lines[end].strip().startswith(fence):
                end += 1
            if prose:
                segments.append((False, "\n".join(prose)))
                prose = []
            segments.append((True, "\n".join(lines[index : end + 1])))
            index = end + 1
        if prose:
            segments.append((False, "\n".join(prose)))
        parts: list[tuple[str, int]] = []
        counts = self.counter.content([segment for _, segment in segments])
        for (is_code, segment), tokens in zip(segments, counts, strict=True):
            if tokens <= budget:
                parts.append((segment, tokens))
            elif is_code:
                parts.extend(self._split_code(segment, budget))
            else:
                parts.extend(self._split_prose(segment, budget, level=1))
        return self._pack(parts, budget, "\n")

    # -- packing a section --

    def _pack_section(self, index: int, blocks: Sequence[Block]) -> list[_Draft]:
        """Fill chunks with the section's blocks in order, splitting only overlong ones."""
        budget = self.budgets[index]
        drafts: list[_Draft] = []
        current = _Draft(section=index, last_section=index)

        def add(piece: _Piece) -> None:
            nonlocal current
            if current.pieces and current.tokens + piece.tokens > budget:
                # A heading or "as follows:" line belongs with what it introduces.
                carried: list[_Piece] = []
                while len(current.pieces) > 1 and self._is_lead_in(current.pieces[-1]):
                    carried.insert(0, current.pieces.pop())
                if sum(p.tokens for p in carried) + piece.tokens > budget:
                    current.pieces.extend(carried)
                    carried = []
                drafts.append(current)
                overlap = None if carried else self._overlap(current.pieces[-1])
                current = _Draft(section=index, last_section=index, pieces=carried)
                if overlap is not None and current.tokens + overlap.tokens + piece.tokens <= budget:
                    current.overlap = overlap
            current.pieces.append(piece)

        counts = self.counter.content([block.text for block in blocks])
        for block, tokens in zip(blocks, counts, strict=True):
            if tokens <= budget:
                add(_Piece(block.kind, block.text, tokens))
                continue
            room = budget - current.tokens
            first_budget = room if current.pieces and room >= 2 * self.min_tokens else budget
            for text, count in self._split(block, budget, first_budget):
                add(_Piece(block.kind, text, count))
        if current.pieces:
            drafts.append(current)
        return drafts

    def _overlap(self, piece: _Piece) -> _Piece | None:
        """Return the trailing sentences of a prose piece, at most overlap_tokens long."""
        if self.overlap_tokens <= 0 or piece.kind not in _PROSE_KINDS:
            return None
        last = piece.text.rsplit("\n", 1)[-1]
        prefix = ""
        if piece.kind == "quote" and last.startswith("> "):
            prefix, last = "> ", last[2:]
        sentences = [part for part in _SENTENCE_END_RE.split(last) if part.strip()]
        if len(sentences) < 2:
            return None  # the whole line would be repeated: that is duplication, not context
        kept: list[str] = []
        total = 0
        for sentence, tokens in zip(
            reversed(sentences[1:]), reversed(self.counter.content(sentences[1:])), strict=True
        ):
            if total + tokens > self.overlap_tokens:
                break
            kept.insert(0, sentence)
            total += tokens
        if not kept:
            return None
        text = prefix + " ".join(kept)
        return _Piece(piece.kind, text, self.counter.one(text))

    # -- merging tiny chunks --

    def _heading_piece(self, from_section: int, to_section: int) -> _Piece:
        """Return the heading lines that lead from one section into another, "## B\n### B1"."""
        before = self.page.sections[from_section].heading_path
        path = self.page.sections[to_section].heading_path
        common = 0
        while common < min(len(before), len(path)) and before[common] == path[common]:
            common += 1
        lines = [f"{'#' * min(6, depth + 2)} {path[depth]}" for depth in range(common, len(path))]
        text = "\n".join(lines) or f"# {self.page.title}"
        return _Piece("heading", text, self.counter.one(text))

    def _joined(self, first: _Draft, second: _Draft) -> _Draft:
        """Return `first` followed by `second` as one draft starting where `first` starts."""
        pieces = list(first.pieces)
        if second.section != first.last_section:
            # Content from another section keeps its heading, so it still reads right.
            pieces.append(self._heading_piece(first.last_section, second.section))
            if second.overlap is not None:
                pieces.append(second.overlap)
        # Same section: second's overlap repeats the end of first, so it is dropped.
        pieces.extend(second.pieces)
        return _Draft(first.section, second.last_section, first.overlap, pieces)

    def _fits(self, draft: _Draft) -> bool:
        return draft.tokens <= self.budgets[draft.section]

    def _merge_tiny(self, drafts: list[_Draft]) -> list[_Draft]:
        """Merge fragments (under min_tokens of their own, or only lead-ins) into a neighbour.

        Preference: the next chunk of the same section, else the previous chunk, else
        the next chunk of the following section; never beyond the token limit.
        """
        index = 0
        while index < len(drafts):
            draft = drafts[index]
            if not self._is_fragment(draft) or len(drafts) == 1:
                index += 1
                continue
            following = drafts[index + 1] if index + 1 < len(drafts) else None
            previous = drafts[index - 1] if index > 0 else None
            if following is not None and following.section == draft.last_section:
                merged = self._joined(draft, following)
                if self._fits(merged):
                    drafts[index : index + 2] = [merged]
                    continue
            if previous is not None:
                merged = self._joined(previous, draft)
                if self._fits(merged):
                    drafts[index - 1 : index + 1] = [merged]
                    index -= 1
                    continue
            if following is not None and following.section != draft.last_section:
                merged = self._joined(draft, following)
                if self._fits(merged):
                    drafts[index : index + 2] = [merged]
                    continue
            index += 1
        return drafts


def chunk_page(
    page: ParsedPage,
    *,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: CountTokens | None = None,
    min_tokens: int = MIN_CHUNK_TOKENS,
) -> list[Chunk]:
    """Return the page's chunks in reading order; each `text` has at most max_tokens.

    `count_tokens` counts a text's tokens as the embedding model sees them; None (the
    default) uses the model's own tokenizer (ragsite.rag.tokens), counted in batches.
    Raises ValueError when max_tokens leaves no room for a section's text.
    """
    counter = _Counter(count_tokens)
    chunker = _Chunker(
        page,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
        min_tokens=min_tokens,
        counter=counter,
    )
    slack = 0
    for _attempt in range(MAX_REPACK_ATTEMPTS):
        drafts = chunker.chunks(slack)
        texts = [f"{chunker.breadcrumbs[d.section]}\n\n{d.body()}" for d in drafts]
        if counter.additive:
            # WordPiece counts add up over whitespace joins: no need to encode it all again.
            counts = [chunker.crumb_tokens[d.section] + d.tokens for d in drafts]
        else:
            counts = counter.counts(texts)
        excess = max((count - max_tokens for count in counts), default=0)
        if excess <= 0:
            break
        # The counter was not additive over the joins: pack again with smaller budgets.
        slack += excess
    else:
        raise ValueError(
            CHUNK_LIMIT_TOO_SMALL_MESSAGE.format(max_tokens=max_tokens, path=page.path)
        )

    chunks: list[Chunk] = []
    occurrences: Counter[str] = Counter()
    for position, (draft, text, tokens) in enumerate(zip(drafts, texts, counts, strict=True)):
        section = page.sections[draft.section]
        content_hash = sha256_text(text)
        occurrence = occurrences[content_hash]
        occurrences[content_hash] += 1
        chunks.append(
            Chunk(
                id=chunk_id(page.path, content_hash, occurrence),
                text=text,
                body=draft.body(),
                title=page.title,
                heading=BREADCRUMB_SEPARATOR.join(section.heading_path),
                path=page.path,
                url=section_url(page.url, section.anchor),
                position=position,
                content_hash=content_hash,
                token_count=tokens,
            )
        )
    return chunks


def build_chunks(
    *,
    path: str,
    text: str,
    site_url: str,
    docs_prefix: str,
    max_tokens: int,
    overlap_tokens: int,
    site: Site | None = None,
) -> tuple[ParsedPage, list[Chunk]]:
    """Parse a page's text and cut it into chunks (drafts too: callers skip them).

    Raises PageError for unreadable front matter and ValueError when max_tokens is too
    small for the page.
    """
    page = parse_page(path=path, text=text, site_url=site_url, docs_prefix=docs_prefix, site=site)
    return page, chunk_page(page, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
