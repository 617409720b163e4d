"""The heterogeneity field's statistics: unit std, the correlation it was drawn with, Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from synthtumor.synthesis.heterogeneity import correlation_at_lag, heterogeneity_field
from synthtumor.synthesis.painting import BACKEND_VARIABLE


@pytest.mark.parametrize("corr_mm", [0.8, 1.0, 1.5, 3.0])
def test_one_scale_has_unit_std_the_drawn_correlation_and_gaussian_values(
    monkeypatch: pytest.MonkeyPatch, corr_mm: float
) -> None:
    """Normal draws below one lattice cell of smoothing, uniform ones from there on: either
    way zero mean, unit std, the correlation exp(-h^2 / 4 s^2) at 1 mm and 2 mm, and excess
    kurtosis near 0 (uniform draws smoothed by one cell: -0.08 in theory); both backends agree."""
    fields = {}
    for backend in ("numpy", "numba"):
        monkeypatch.setenv(BACKEND_VARIABLE, backend)
        fields[backend] = np.stack([
            heterogeneity_field((48, 48, 48), (1.0, 1.0, 1.0), corr_mm, 1, 0.5,
                                np.random.default_rng(seed)).copy()
            for seed in range(8)
        ])
    np.testing.assert_allclose(fields["numpy"], fields["numba"], atol=1e-4)
    f = fields["numba"]
    assert abs(float(f.mean())) < 0.05
    assert float(f.std()) == pytest.approx(1.0, abs=0.03)
    for lag in (1, 2):
        measured = np.corrcoef(f[:, :-lag].ravel(), f[:, lag:].ravel())[0, 1]
        assert measured == pytest.approx(correlation_at_lag(corr_mm, float(lag)), abs=0.03)
    assert abs(float(stats.kurtosis(f.ravel()))) < 0.12


def test_a_coarse_lattice_is_interpolated_to_anisotropic_voxels_with_unit_std() -> None:
    """3 mm slices, 0.75 mm in-plane, 4 mm correlation: the lattice is coarser than the
    in-plane voxels (interpolated) and the field is still standardised and correlated as
    drawn along the slices' axis."""
    f = np.stack([heterogeneity_field((96, 96, 24), (0.75, 0.75, 3.0), 4.0, 1, 0.5,
                                      np.random.default_rng(seed)).copy() for seed in range(6)])
    assert float(f.std()) == pytest.approx(1.0, abs=0.05)
    measured = np.corrcoef(f[..., :-1].ravel(), f[..., 1:].ravel())[0, 1]
    assert measured == pytest.approx(correlation_at_lag(4.0, 3.0), abs=0.05)
