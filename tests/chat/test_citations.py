"""Citation checking: the reader never sees a [n] that points at no source."""

from __future__ import annotations

import pytest

from chat.services.citations import CitationFilter, citations_clean


def stream_through(pieces: list[str], valid: range) -> tuple[str, list[str], list[int]]:
    citation_filter = CitationFilter(valid)
    shown = [citation_filter.feed(piece) for piece in pieces]
    shown.append(citation_filter.flush())
    return "".join(shown), shown, citation_filter.citations


def test_invalid_citation_is_removed_with_its_blank():
    text, cited = citations_clean("Lidar uses lasers [1]. It costs a lot [9].", range(1, 6))
    assert text == "Lidar uses lasers [1]. It costs a lot."
    assert cited == [1]


def test_group_keeps_only_valid_numbers():
    text, cited = citations_clean("Both agree [2, 9, 4].", range(1, 6))
    assert text == "Both agree [2, 4]."
    assert cited == [2, 4]


@pytest.mark.parametrize(
    "pieces",
    [
        ["Lidar is costly ", "[", "9", "]", " and heavy [", "2]."],
        ["Lidar is costly [9", "] and heavy [2", "]."],
        ["Lidar is costly [9] and heavy [2]."],
        ["Lidar", " is", " costly", " [9]", " and", " heavy", " [2].", ""],
    ],
)
def test_split_citations_are_checked_across_pieces(pieces):
    text, shown, cited = stream_through(pieces, range(1, 6))
    assert text == "Lidar is costly and heavy [2]."
    assert not any("9" in piece for piece in shown)
    assert cited == [2]


def test_code_indexing_is_not_a_citation():
    text, cited = citations_clean("Use `points[9]` or items[12] here [1].", range(1, 4))
    assert text == "Use `points[9]` or items[12] here [1]."
    assert cited == [1]


def test_index_split_across_pieces_is_still_code():
    text, _, cited = stream_through(["items", "[9]"], range(1, 3))
    assert text == "items[9]"
    assert cited == []


def test_unclosed_bracket_is_released():
    text, _, cited = stream_through(["Ranges [10 to 20 m", "] matter"], range(1, 3))
    assert text == "Ranges [10 to 20 m] matter"
    assert cited == []


def test_trailing_blank_is_released_at_the_end():
    text, _, _ = stream_through(["Done. ", "\n"], range(1, 3))
    assert text == "Done. \n"
