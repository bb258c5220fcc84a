"""Batch inference: score entities as of a time with the same features and model as
``/predict``, in chunks, to Arrow, Parquet or a table."""
