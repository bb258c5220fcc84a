"""On-demand transformations, run by the same code offline and online.

An :class:`~headwater.definitions.OnDemandFeatureView` names a vectorized function over
features of other views and request fields. :func:`~headwater.transforms.execute.run_on_demand`
runs it over one batch and checks what it returns; :mod:`~headwater.transforms.offline` applies
it to the streamed batches of a training frame and :mod:`~headwater.transforms.online` to an
online response, so a value is computed the same way for training and serving.
:mod:`~headwater.transforms.functions` finds the callable behind a registered view (the
registry keeps only its source text) and refuses code that differs from the registered one.
"""

from __future__ import annotations
