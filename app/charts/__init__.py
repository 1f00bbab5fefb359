"""Pure chart builders of the app: ``DataFrame -> plotly Figure``, testable without Streamlit."""
