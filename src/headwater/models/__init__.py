"""The model lifecycle: training runs, evaluation, the model registry and artifacts.

``base`` holds the shared records; ``training`` turns a registered ModelSpec into a new
version (``frame`` -> ``split`` -> fit -> ``metrics`` -> ``artifacts`` -> ``registry``);
``registry`` keeps versions, aliases, promotion history and lineage in the catalog's
database; ``formats`` and ``predictor`` store and load fitted estimators safely.
"""
