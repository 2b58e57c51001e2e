"""Batch scoring of whole objects: storage events and ``modelfn batch``.

``tabular`` maps named columns to model feeds and outputs to columns; ``formats`` reads and writes
CSV, JSONL, JSON, NPY and Parquet in row chunks; ``sink`` writes outputs atomically and at most once;
``job`` scores one object; ``events`` and ``trigger`` turn Lambda storage events into jobs.
Nothing here is imported by ``modelfn.handlers.http``; heavy imports are lazy.
"""
