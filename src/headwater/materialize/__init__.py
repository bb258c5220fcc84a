"""Materialization: offline -> online, in batches, with per-view watermarks."""
