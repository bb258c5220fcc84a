"""Serving: online feature reads (``plans``, ``online``, ``response``) and the feature server
at the web edge (``http``, with ``edge``, ``auth``, ``requests``, ``schemas``, ``openapi`` and
``metrics``), which only the server imports."""
