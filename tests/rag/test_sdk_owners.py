"""One module owns each external SDK; every embedder offers both halves of the Protocol."""

from __future__ import annotations

import ast

import pytest

from ragsite.rag.types import Embedder
from tests.conftest import REPO_DIR

OWNERS = {
    "openai": "ragsite/rag/openai_clients.py",
    "qdrant_client": "ragsite/rag/vectorstore.py",
    "qdrant_edge": "ragsite/rag/edgestore.py",
}


def _importers(sdk: str) -> set[str]:
    found = set()
    for folder in ("ragsite", "chat", "ingestion"):
        for path in (REPO_DIR / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                if any(name == sdk or name.startswith(f"{sdk}.") for name in names):
                    found.add(path.relative_to(REPO_DIR).as_posix())
    return found


@pytest.mark.parametrize("sdk", sorted(OWNERS))
def test_each_sdk_has_one_owner(sdk):
    assert _importers(sdk) == {OWNERS[sdk]}


def test_both_embedders_satisfy_the_protocol():
    from ragsite.rag.embeddings import LocalEmbedder, OpenAIEmbedder

    for embedder in (LocalEmbedder.default(), OpenAIEmbedder(model="text-embedding-3-small")):
        assert isinstance(embedder, Embedder)
        assert callable(embedder.embed_sync)
    assert len(LocalEmbedder.default().embed_sync(["a lidar measures range"])[0]) == 384
