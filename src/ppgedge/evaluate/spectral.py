"""The spectral baseline: the PPG spectrum's peak inside the heart-rate band, no learning.

Any learned model must beat it; during motion it locks onto the cadence, which is exactly the
failure a model that also sees the accelerometer should fix.
"""

from __future__ import annotations

import numpy as np

from ppgedge.data.format import BPM_MAX, BPM_MIN
from ppgedge.data.preprocess import zscore_numpy

NFFT = 2048


def spectral_bpm(ppg: np.ndarray, rate_hz: float, nfft: int = NFFT) -> np.ndarray:
    """(N, T) PPG windows -> (N,) BPM at the largest Hann-windowed periodogram peak."""
    x = zscore_numpy(np.atleast_2d(ppg)) * np.hanning(ppg.shape[-1])[None, :]
    power = np.abs(np.fft.rfft(x, n=nfft, axis=-1)) ** 2
    freqs_bpm = np.fft.rfftfreq(nfft, d=1.0 / rate_hz) * 60.0
    band = (freqs_bpm >= BPM_MIN) & (freqs_bpm <= BPM_MAX)
    return freqs_bpm[band][np.argmax(power[:, band], axis=1)]
