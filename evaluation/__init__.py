"""Retrieval evaluation: question sets, the hit rule, metrics, baselines and the runner.

- `questions`: the JSONL question format (in-book and out-of-book rows).
- `hits`: normalisation and the hit rule (is a retrieved chunk the answer's passage?).
- `metrics`: Recall@k, MRR@k, per-method scores.
- `baselines`: BM25 alone (rank-bm25, the `eval` dependency group).
- `report`: what one evaluation measured, as a table and as JSON.
- `runner`: index a book into a temporary store and ask every question
  (`retrieval_evaluate`); `manage.py eval_retrieval` is its command.

docs/retrieval-quality.md explains the question sets, the figures and how to rerun.
"""
