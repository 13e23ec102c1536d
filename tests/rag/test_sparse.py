"""The BM25 sparse encoder: what it keeps, how it weighs terms, and that ids never move."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ragsite.rag.sparse import (
    AVG_DOC_LENGTH,
    K1,
    encode_document,
    encode_query,
    fold,
    term_id,
    tokenize,
)
from tests.conftest import REPO_DIR

# Pinned ids: a persisted index stays searchable only if these never change.
KNOWN_IDS = {"lidar": 698507621, "ros2": 2866787904, "c++": 4108097864, "sensor": 2728836235}


def _weight(text: str, term: str) -> float:
    vector = encode_document(text)
    return vector.values[vector.indices.index(term_id(term))]


def test_tokenize_normalises_and_drops_stopwords():
    tokens = tokenize("What is the ROS2 node? It's written in C++ and C#, not Python!")
    assert tokens == ["ros2", "node", "written", "c++", "c#", "python"]


def test_tokenize_splits_identifiers_and_applies_nfkc():
    # "ﬁ" is a ligature; NFKC turns it into "fi". Fullwidth digits become ASCII.
    assert tokenize("read_file() ﬁle-system ３D") == ["read", "file", "file", "system", "3d"]


def test_accents_are_folded_where_they_do_not_make_the_word():
    # A reader types "Beyonce" and "Lodz" for the book's "Beyoncé" and "Łódź".
    assert tokenize("Beyoncé Frédéric Chopin Łódź Ørsted Straße") == tokenize(
        "Beyonce Frederic Chopin Lodz Orsted strasse"
    )
    assert tokenize("Beyoncé") == ["beyonce"]
    # Other scripts keep their letters and marks: Cyrillic and Greek letters lose only
    # their accents; Japanese and Korean stay as written.
    assert tokenize("Привет ά 日本語のテキスト ガ 한국어") == [
        "привет",
        "α",
        "日本語のテキスト",
        "ガ",
        "한국어",
    ]
    assert fold("Frédéric") == "frederic"


def test_plurals_match_their_singular():
    assert tokenize("sensors policies boxes patches") == tokenize("sensor policy box patch")
    assert tokenize("class status analysis gps bus") == [
        "class",
        "status",
        "analysis",
        "gps",
        "bus",
    ]


def test_term_ids_are_pinned_32_bit_values():
    assert {term: term_id(term) for term in KNOWN_IDS} == KNOWN_IDS
    assert all(0 <= term_id(term) < 2**32 for term in ("a", "ümlaut", "日本語"))


def test_vectors_are_identical_in_another_process():
    text = "Lidar sensors in ROS2 publish point clouds; the C++ driver filters the clouds."
    code = (
        "import json, sys; from ragsite.rag.sparse import encode_document, encode_query;"
        "d = encode_document(sys.argv[1]); q = encode_query(sys.argv[1]);"
        "print(json.dumps([d.indices, d.values, q.indices]))"
    )
    # A different hash seed: Python's own hash() would change here, ours must not.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, text],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    document, query = encode_document(text), encode_query(text)
    assert json.loads(out) == [document.indices, document.values, query.indices]


def test_stopwords_carry_no_weight():
    assert encode_document("the and of it is was").indices == []
    assert encode_query("what is this?").indices == []
    assert term_id("the") not in encode_document("the lidar").indices


def test_term_frequency_saturates():
    filler = " ".join(f"word{i}" for i in range(60))
    once = _weight(f"lidar {filler}", "lidar")
    twice = _weight(f"lidar lidar {filler}", "lidar")
    ten = _weight(f"{'lidar ' * 10}{filler}", "lidar")
    assert once < twice < ten
    assert ten < 2 * once  # ten mentions are worth less than two single ones
    assert ten < K1 + 1  # BM25's ceiling


def test_longer_chunks_weigh_each_mention_less():
    short = _weight("lidar " + " ".join(f"w{i}" for i in range(10)), "lidar")
    typical = _weight("lidar " + " ".join(f"w{i}" for i in range(int(AVG_DOC_LENGTH) - 1)), "lidar")
    long = _weight("lidar " + " ".join(f"w{i}" for i in range(400)), "lidar")
    assert short > typical > long
    assert abs(typical - 1.0) < 1e-9  # tf=1 in an average-length chunk weighs exactly 1


def test_query_vector_has_unique_terms_of_weight_one():
    query = encode_query("Lidar, lidar and modern LIDAR sensors")
    assert query.indices == sorted({term_id("lidar"), term_id("modern"), term_id("sensor")})
    assert query.values == [1.0, 1.0, 1.0]


def test_document_indices_are_sorted_and_unique():
    vector = encode_document("b a c b d a e lidar lidar lidar")
    assert vector.indices == sorted(set(vector.indices))
    assert len(vector.values) == len(vector.indices)
