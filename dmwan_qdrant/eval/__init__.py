"""Metrics of the ZS-SBIR protocol and the scoring of a model on a benchmark split."""

from .metrics import average_precision, mean_average_precision, precision_at_k, retrieval_metrics

__all__ = ["average_precision", "mean_average_precision", "precision_at_k", "retrieval_metrics"]
