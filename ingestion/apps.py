from django.apps import AppConfig


class IngestionConfig(AppConfig):
    """Book ingestion: documents, tasks, content hashes, the ingest command and API."""

    name = "ingestion"
    verbose_name = "Book ingestion"

    def ready(self) -> None:
        """Answering finds the sentence vectors ingestion stored in its embedding cache."""
        from ragsite.rag import providers

        from .services.cache import DatabaseSentenceVectors

        providers.set_sentence_vectors(DatabaseSentenceVectors())
