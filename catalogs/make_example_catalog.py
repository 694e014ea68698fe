"""Write ``catalogs/fermixr_example.fits``: a small catalog in the 4FGL (DR3/DR4) FITS layout
holding the point sources of fermixr's synthetic example data set (``examples/data``).

    python catalogs/make_example_catalog.py            # from the repository root

The sources, positions and spectra come from ``examples/data/truth.yaml`` (power laws given
by their integral flux between LowerLimit and UpperLimit); the catalog gives each one as a
4FGL ``PowerLaw`` row with its flux density at a 1 GeV pivot, and an association name
(``ASSOC1``).  HDU and column names, formats and units are 4FGL's for every column written;
columns whose value a real catalog would measure (significance, uncertainties, position
errors) are NaN: this is truth, not a fit.  NOT real LAT data.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

HERE = Path(__file__).resolve().parent
TRUTH = HERE.parent / "examples" / "data" / "truth.yaml"
OUT = HERE / "fermixr_example.fits"
PIVOT = 1000.0  # MeV
MEV_TO_ERG = 1.602176634e-6

ASSOCIATIONS = {"SYN_CRAB": "Synthetic Crab", "SYN_HARD": "Synthetic Hard",
                "SYN_SOFT": "Synthetic Soft"}


def pl2_to_density(integral: float, index: float, emin: float, emax: float,
                   e0: float) -> float:
    """dN/dE at e0 of a power law with photon index ``index`` (positive) whose integral
    between emin and emax is ``integral``."""
    g = index
    if abs(g - 1.0) < 1e-12:
        return integral / (e0 * math.log(emax / emin))
    return integral * (1.0 - g) / (e0 ** g * (emax ** (1.0 - g) - emin ** (1.0 - g)))


def pl_flux(k: float, g: float, e0: float, e1: float, e2: float, moment: int = 0) -> float:
    """Integral of E^moment K (E/e0)^-g from e1 to e2."""
    a = moment + 1.0 - g
    if abs(a) < 1e-12:
        return k * e0 ** g * math.log(e2 / e1)
    return k * e0 ** g * (e2 ** a - e1 ** a) / a


def build_rows(truth: dict) -> list[dict]:
    rows = []
    for s in truth["sources"]:
        sp = s["spectrum"]
        if sp["type"] != "PowerLaw2":
            raise ValueError(f"{s['name']}: spectrum {sp['type']} is not PowerLaw2")
        g = float(sp["Index"])
        k = pl2_to_density(float(sp["Integral"]), g, float(sp["LowerLimit"]),
                           float(sp["UpperLimit"]), PIVOT)
        rows.append(dict(
            Source_Name=s["name"], RAJ2000=s["ra"], DEJ2000=s["dec"], GLON=s["glon"],
            GLAT=s["glat"], Pivot_Energy=PIVOT,
            Flux1000=pl_flux(k, g, PIVOT, 1e3, 1e5),
            Energy_Flux100=pl_flux(k, g, PIVOT, 1e2, 1e5, moment=1) * MEV_TO_ERG,
            SpectrumType="PowerLaw", PL_Flux_Density=k, PL_Index=g,
            LP_Flux_Density=k, LP_Index=g, LP_beta=0.0,
            PLEC_Flux_Density=k, PLEC_IndexS=g, PLEC_ExpfactorS=0.0, PLEC_Exp_Index=0.6667,
            ASSOC1=ASSOCIATIONS.get(s["name"], ""), CLASS1="",
        ))
    return rows


# (name, FITS format, unit) of the columns written, in 4FGL's order
COLUMNS = [
    ("Source_Name", "18A", None), ("RAJ2000", "E", "deg"), ("DEJ2000", "E", "deg"),
    ("GLON", "E", "deg"), ("GLAT", "E", "deg"),
    ("Conf_68_SemiMajor", "E", "deg"), ("Conf_68_SemiMinor", "E", "deg"),
    ("Conf_68_PosAng", "E", "deg"), ("Conf_95_SemiMajor", "E", "deg"),
    ("Conf_95_SemiMinor", "E", "deg"), ("Conf_95_PosAng", "E", "deg"),
    ("Extended_Source_Name", "18A", None), ("Signif_Avg", "E", None),
    ("Pivot_Energy", "E", "MeV"), ("Flux1000", "E", "cm-2 s-1"),
    ("Unc_Flux1000", "E", "cm-2 s-1"), ("Energy_Flux100", "E", "erg cm-2 s-1"),
    ("Unc_Energy_Flux100", "E", "erg cm-2 s-1"), ("SpectrumType", "17A", None),
    ("PL_Flux_Density", "E", "cm-2 MeV-1 s-1"), ("Unc_PL_Flux_Density", "E", "cm-2 MeV-1 s-1"),
    ("PL_Index", "E", None), ("Unc_PL_Index", "E", None),
    ("LP_Flux_Density", "E", "cm-2 MeV-1 s-1"), ("Unc_LP_Flux_Density", "E", "cm-2 MeV-1 s-1"),
    ("LP_Index", "E", None), ("Unc_LP_Index", "E", None), ("LP_beta", "E", None),
    ("Unc_LP_beta", "E", None), ("PLEC_Flux_Density", "E", "cm-2 MeV-1 s-1"),
    ("Unc_PLEC_Flux_Density", "E", "cm-2 MeV-1 s-1"), ("PLEC_IndexS", "E", None),
    ("Unc_PLEC_IndexS", "E", None), ("PLEC_ExpfactorS", "E", None),
    ("Unc_PLEC_ExpfactorS", "E", None), ("PLEC_Exp_Index", "E", None),
    ("Unc_PLEC_Exp_Index", "E", None), ("Npred", "E", None),
    ("Variability_Index", "E", None), ("ASSOC_FGL", "18A", None), ("ASSOC_FHL", "18A", None),
    ("ASSOC_GAM1", "17A", None), ("ASSOC_GAM2", "17A", None), ("ASSOC_GAM3", "17A", None),
    ("TEVCAT_FLAG", "1A", None), ("ASSOC_TEV", "24A", None), ("CLASS1", "5A", None),
    ("CLASS2", "5A", None), ("ASSOC1", "28A", None), ("ASSOC2", "26A", None),
    ("ASSOC_PROB_BAY", "E", None), ("ASSOC_PROB_LR", "E", None), ("Flags", "I", None),
]
EXT_COLUMNS = [
    ("Source_Name", "18A", None), ("RAJ2000", "E", "deg"), ("DEJ2000", "E", "deg"),
    ("GLON", "E", "deg"), ("GLAT", "E", "deg"), ("Model_Form", "11A", None),
    ("Model_SemiMajor", "E", "deg"), ("Model_SemiMinor", "E", "deg"),
    ("Model_PosAng", "E", "deg"), ("Spatial_Function", "15A", None),
    ("Spatial_Filename", "32A", None),
]


def _column(name, fmt, unit, values):
    if fmt.endswith("A"):
        arr = np.array([str(v) for v in values], dtype=f"S{int(fmt[:-1])}")
    elif fmt == "I":
        arr = np.array(values, dtype=np.int16)
    else:
        arr = np.array(values, dtype=np.float32)
    return fits.Column(name=name, format=fmt, unit=unit, array=arr)


def make_hdus(rows: list[dict]) -> fits.HDUList:
    def default(fmt):
        return "" if fmt.endswith("A") else (0 if fmt == "I" else np.nan)

    cols = [_column(n, f, u, [r.get(n, default(f)) for r in rows]) for n, f, u in COLUMNS]
    main = fits.BinTableHDU.from_columns(cols, name="LAT_Point_Source_Catalog")
    ext = fits.BinTableHDU.from_columns(
        [_column(n, f, u, []) for n, f, u in EXT_COLUMNS], name="ExtendedSources")
    primary = fits.PrimaryHDU()
    primary.header["CDS-NAME"] = ("FXR-EXAMPLE", "fermixr synthetic example catalog")
    primary.header["COMMENT"] = "Synthetic sources of fermixr's example data set; NOT real LAT"
    primary.header["COMMENT"] = "data.  4FGL layout; written by catalogs/make_example_catalog.py"
    main.header["CDS-NAME"] = "FXR-EXAMPLE"
    return fits.HDUList([primary, main, ext])


def main(out: Path = OUT, truth: Path = TRUTH) -> Path:
    with open(truth) as f:
        t = yaml.safe_load(f)
    make_hdus(build_rows(t)).writeto(out, overwrite=True)
    return out


if __name__ == "__main__":
    print(main())
