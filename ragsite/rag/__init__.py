"""The shared service package: our own types plus the adapters for Qdrant, the
embedding models and the chat models. Plain Python, no Django models."""
