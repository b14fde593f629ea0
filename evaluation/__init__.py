"""Evaluation: evaluate-based emotion metrics, the benchmark harness (rank / generate), LLM judging, model cards and Hub push."""
