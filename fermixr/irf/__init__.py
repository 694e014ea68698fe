"""Instrument response functions: effective area, PSF and energy dispersion evaluated as
the Science Tools evaluate the CALDB tables, and exposure-weighted averages."""

from .aeff import EffectiveArea, EfficiencyFactor
from .edisp import EnergyDispersion
from .irfset import IRFSet, Response, load_irfs
from .mean import (LivetimeProfile, containment_radius, exposure_cth, mean_edisp, mean_psf,
                   psf_model, psf_model_containment, psf_model_interp)
from .psf import KingPSF

__all__ = [
    "EffectiveArea",
    "EfficiencyFactor",
    "EnergyDispersion",
    "IRFSet",
    "KingPSF",
    "LivetimeProfile",
    "Response",
    "containment_radius",
    "exposure_cth",
    "load_irfs",
    "mean_edisp",
    "mean_psf",
    "psf_model",
    "psf_model_containment",
    "psf_model_interp",
]
