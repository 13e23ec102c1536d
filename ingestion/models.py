"""What ragsite remembers about the book it indexed (SQLite).

- `Document`: one Markdown/MDX page of the book and the version of it that is indexed.
- `DocumentChunk`: one row per point in the vector store, so SQLite and Qdrant can be
  compared and a page's obsolete points found without asking the store.
- `CachedEmbedding`: the embedding cache keyed by a chunk's content hash and the
  embedder, so unchanged text is never embedded twice (a renamed page, a chunk moved
  to another page, a re-run after a crash).
- `IngestionTask`: one run of `book_ingest`, with the counters of API.md.
"""

from __future__ import annotations

import uuid

import numpy as np
from django.db import models


class Document(models.Model):
    """One page of the book (a .md/.mdx file) and its indexed version."""

    class Status(models.TextChoices):
        INDEXED = "indexed", "indexed"
        FAILED = (
            "failed",
            "failed",
        )  # the latest version could not be read; an older one may be indexed

    path = models.CharField(max_length=1024, unique=True, help_text="Relative to the book folder.")
    title = models.CharField(max_length=500, blank=True)
    url = models.CharField(
        max_length=2000, blank=True, help_text="Published page, empty without SITE_URL."
    )
    content_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="sha256 of the indexed file's bytes; empty if never indexed.",
    )
    signature = models.CharField(
        max_length=64,
        blank=True,
        help_text="Hash of what the chunks were built with (chunker version, chunk size, overlap, "
        "site URL, embedder); when it changes the page is rebuilt.",
    )
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INDEXED)
    error = models.TextField(blank=True, help_text="Why the latest version could not be ingested.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_ingested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the indexed version was written to the store."
    )

    class Meta:
        ordering = ["path"]
        indexes = [models.Index(fields=["status"], name="ingestion_doc_status")]

    def __str__(self) -> str:
        return self.path


class DocumentChunk(models.Model):
    """One chunk of a document: a point in the vector store (same id)."""

    id = models.CharField(primary_key=True, max_length=36, help_text="The point id (uuid5).")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    token_count = models.PositiveIntegerField(default=0)
    heading = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["document", "position"]
        indexes = [
            models.Index(fields=["document", "position"], name="ingestion_chunk_doc_pos"),
            models.Index(fields=["content_hash"], name="ingestion_chunk_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class CachedEmbedding(models.Model):
    """A chunk text's vector for one embedder, keyed by the text's sha256."""

    content_hash = models.CharField(max_length=64)
    embedder = models.CharField(max_length=300, help_text="provider:model:dimension")
    dimension = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian")
    sentences = models.BinaryField(
        null=True,
        help_text="the chunk's sentence vectors from the same model run "
        "(ragsite/rag/sentences.py); NULL when the embedder gives none",
    )
    sentences_version = models.PositiveSmallIntegerField(
        default=0, help_text="SENTENCES_VERSION the sentences were cut with (0: none)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["embedder", "content_hash"], name="ingestion_cache_unique"
            )
        ]
        indexes = [models.Index(fields=["last_used_at"], name="ingestion_cache_used")]

    def __str__(self) -> str:
        return f"{self.content_hash[:12]} ({self.embedder})"

    @staticmethod
    def pack(vector: list[float]) -> bytes:
        """Return a vector as float32 little-endian bytes."""
        return np.asarray(vector, dtype="<f4").tobytes()

    def unpack(self) -> list[float]:
        """Return the stored vector as a list of floats."""
        return np.frombuffer(bytes(self.vector), dtype="<f4").tolist()


class IngestionTask(models.Model):
    """One ingestion run; its id is the `task_id` of the API."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    class Source(models.TextChoices):
        COMMAND = "manage.py", "manage.py"
        API = "api", "api"
        ADMIN = "admin", "admin"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=16, choices=Source.choices)
    book_dir = models.CharField(max_length=1024, help_text="The book folder, as shown to users.")
    path = models.CharField(
        max_length=1024, blank=True, help_text="Sub-folder or file ingested; empty: the whole book."
    )
    force = models.BooleanField(default=False)
    dry_run = models.BooleanField(default=False)

    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    files_new = models.PositiveIntegerField(default=0)
    files_changed = models.PositiveIntegerField(default=0)
    files_unchanged = models.PositiveIntegerField(default=0)
    files_failed = models.PositiveIntegerField(default=0)
    files_deleted = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0, help_text="Draft pages.")
    chunks_added = models.PositiveIntegerField(default=0)
    chunks_deleted = models.PositiveIntegerField(default=0)
    chunks_unchanged = models.PositiveIntegerField(
        default=0, help_text="Chunks of unchanged files."
    )
    embeddings_computed = models.PositiveIntegerField(default=0)
    embeddings_reused = models.PositiveIntegerField(
        default=0, help_text="Vectors taken from the cache."
    )
    tokens_embedded = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    errors = models.JSONField(default=list, blank=True, help_text='[{"path", "message"}]')
    file_changes = models.JSONField(
        default=dict,
        blank=True,
        help_text='The pages this run touched: {"new", "changed", "deleted", "failed", "skipped"} '
        "-> list of paths (unchanged pages are not listed).",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(
        auto_now=True, help_text="Heartbeat: bumped by every progress save."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)

    pid = models.PositiveIntegerField(null=True, blank=True, help_text="Process running the task.")
    hostname = models.CharField(max_length=255, blank=True)
    process_token = models.CharField(
        max_length=100,
        blank=True,
        help_text="Boot id and start time of that process (tells a reused pid apart).",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status"], name="ingestion_task_status"),
            models.Index(fields=["-created_at"], name="ingestion_task_created"),
        ]
        constraints = [
            # One ingestion at a time, across every process and replica: the database,
            # not a process flag, refuses a second active (non dry-run) task. All such
            # rows have dry_run=False, so "unique dry_run" among them means "at most one".
            models.UniqueConstraint(
                fields=["dry_run"],
                condition=models.Q(status__in=["queued", "running"], dry_run=False),
                name="ingestion_one_active_task",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_active(self) -> bool:
        """True while the task is queued or running."""
        return self.status in self.ACTIVE


class Dashboard(IngestionTask):
    """Proxy model that gives the admin's ingestion dashboard its place and URL."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
