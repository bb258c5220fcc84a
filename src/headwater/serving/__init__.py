"""Serving: online feature reads (and, at the web edge, ``http.py``)."""
