"""Real-time ingestion: ``push`` of rows to a feature view's online and offline stores.

:mod:`~headwater.streaming.push` is the entry point (``FeatureStore.push`` delegates to it);
:mod:`~headwater.streaming.push_rows` validates and types the pushed rows, and
:mod:`~headwater.streaming.parquet_append` appends them to a folder ``FileSource``.
"""
