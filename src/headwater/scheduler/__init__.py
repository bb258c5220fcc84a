"""Periodic jobs declared in the repo (:class:`~headwater.definitions.job.Job`), run by
``headwater scheduler`` with runs recorded in the registry database."""
