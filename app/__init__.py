"""The fullspectrum Streamlit lab: ``fullspectrum app`` runs ``app/streamlit_app.py``.

Pages live in ``app/app_pages/``, pure chart builders (``DataFrame -> go.Figure``)
in ``app/charts/``, every cached loader in ``app/cache.py``. The app draws what
the library and ``analysis`` compute; it never computes a metric or trains.
"""
