"""The web dashboard behind ``headwater ui``: server-rendered pages over a FeatureStore.

:mod:`~headwater.ui.app` builds the app (login with the server's API keys, the layout, one
route per page); :mod:`~headwater.ui.html` holds the HTML helpers every page uses; each page
is a module with a ``render(store, query) -> str`` function that returns the page's body.
Everything a page shows is drawn here: HTML, inline SVG charts and one stylesheet served by
the app itself, so the dashboard works without internet and without JavaScript.
"""
