"""The ``headwater`` command line: thin click commands over the packages.

Commands parse options, call one function of the package that owns the work (``repo``,
``store``, ``demo``) and render the result with rich. ``HeadwaterError`` becomes one red
``error: ...`` line on stderr and exit code 1; usage errors exit 2.
"""
