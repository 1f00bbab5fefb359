"""The spectra worker starts beside a user's training loop: every import it makes is paid in CPU
time the loop shares (the Tracker's overhead), so it must not pull in pandas."""

import subprocess
import sys


def test_the_spectra_worker_does_not_import_pandas():
    probe = "import sys, fullspectrum.spectrum.worker; print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_summaries_still_build_frames_after_the_lazy_import():
    import pandas as pd

    from fullspectrum.spectrum.coordinate import full_spectrum_vector, network_summary

    layers = pd.DataFrame(
        {
            "n_left": [4],
            "n_right": [2],
            "dead_left": [0],
            "dead_right": [0],
            "edges": [4],
            "density": [0.5],
            "delta_r": [1.5],
        }
    )
    summary = network_summary(layers)
    assert isinstance(summary, pd.Series) and summary["delta_r"] == 1.5
    # A Series is read by key, in SPEC §4's order (delta_r, lambda_w, delta_r_imdb, lambda_imsg).
    row = pd.Series({"delta_r": 1.0, "delta_r_imdb": 2.0, "lambda_w": 3.0, "lambda_imsg": 4.0})
    assert full_spectrum_vector(row).tolist() == [1.0, 3.0, 2.0, 4.0]
