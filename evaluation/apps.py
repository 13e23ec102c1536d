from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    """Retrieval evaluation (no models): the `eval_retrieval` command and its harness."""

    name = "evaluation"
    verbose_name = "retrieval evaluation"
