"""The fullspectrum Streamlit lab (issue 5): ``fullspectrum app`` runs ``app/streamlit_app.py``.

Pages live in ``app/app_pages/``, pure chart builders (``DataFrame -> go.Figure``)
in ``app/charts/``, every cached loader in ``app/state.py``. The app draws what
the library and ``analysis`` compute; it never computes a metric or trains.
"""
