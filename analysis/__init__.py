"""Studies that consume runs: correlations, embeddings, mask comparisons, reproductions.

Depends on `fullspectrum`; never on Streamlit or Plotly (the app imports this, not the reverse).
"""
