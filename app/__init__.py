"""The fullspectrum Streamlit lab: ``fullspectrum app`` runs ``app/streamlit_app.py`` behind the Host
allow-list of ``app/server.py``.

Pages live in ``app/app_pages/``, pure chart builders (``DataFrame -> go.Figure``)
in ``app/charts/``, every cached loader in ``app/cache.py``, the widgets pages share (the run
picker, errors, uploads) in ``app/widgets.py``. The app draws what
the library and ``analysis`` compute; it never computes a metric or trains.
"""
