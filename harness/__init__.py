"""Evaluation-first harness: should we fine-tune, use RAG, or just prompt better?"""

__version__ = "0.1.0"
