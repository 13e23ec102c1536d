from django.apps import AppConfig


class IngestionConfig(AppConfig):
    """Book ingestion: documents, tasks, content hashes, the ingest command and API."""

    name = "ingestion"
    verbose_name = "Book ingestion"
