"""Fermipy's file tools as fermixr sub-commands: coadd (counts cubes added, the Science
Tools' cntmap of the Crab day twice gives twice its counts), vstack (HEALPix planes in
order), healview (a PNG of a full and of a partial HEALPix map), collect-sources (many
ROIs' tables in one, names prefixed) and cluster-sources (single-linkage groups and their
representatives on a known layout); no output is written over without --clobber."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

REPO = Path(__file__).resolve().parent.parent


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fermixr.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO)


def _hpx(path, planes, nside=4, pix=None, ordering="RING", coordsys="GAL"):
    cols = []
    if pix is not None:
        cols.append(fits.Column(name="PIX", format="J", array=np.asarray(pix)))
    cols += [fits.Column(name=f"CHANNEL{i + 1}", format="D", array=np.asarray(p, float))
             for i, p in enumerate(planes)]
    t = fits.BinTableHDU.from_columns(cols, name="SKYMAP")
    t.header.update(PIXTYPE="HEALPIX", ORDERING=ordering, COORDSYS=coordsys, NSIDE=nside,
                    INDXSCHM="EXPLICIT" if pix is not None else "IMPLICIT")
    fits.HDUList([fits.PrimaryHDU(), t]).writeto(path)
    return path


def test_coadd_adds_counts_cubes_of_one_grid(crab_day, tmp_path):
    src = crab_day / "cntmap.fits.gz"
    out = tmp_path / "sum.fits"
    r = _cli("coadd", src, src, "-o", out)
    assert r.returncode == 0, r.stderr
    with fits.open(src) as a, fits.open(out) as b:
        np.testing.assert_array_equal(b[0].data, 2 * a[0].data.astype(float))
        assert b[0].header["NFILES"] == 2
        assert [h.name for h in b] == [h.name for h in a]        # EBOUNDS, GTI kept
    # HEALPix cubes too
    h1 = _hpx(tmp_path / "h1.fits", [np.arange(192.0), np.ones(192)])
    h2 = _hpx(tmp_path / "h2.fits", [np.ones(192), np.arange(192.0)])
    r = _cli("coadd", h1, h2, "-o", tmp_path / "hsum.fits")
    assert r.returncode == 0, r.stderr
    with fits.open(tmp_path / "hsum.fits") as f:
        np.testing.assert_array_equal(f[1].data["CHANNEL1"], np.arange(192.0) + 1)
    # another grid: refused naming the key; an existing output is not replaced
    h3 = _hpx(tmp_path / "h3.fits", [np.ones(768), np.ones(768)], nside=8)
    r = _cli("coadd", h1, h3, "-o", tmp_path / "bad.fits")
    assert r.returncode == 2 and "NSIDE = 8 differs" in r.stderr
    assert not (tmp_path / "bad.fits").exists()
    before = out.read_bytes()
    r = _cli("coadd", src, "-o", out)
    assert r.returncode == 2 and "exists; give --clobber" in r.stderr
    assert out.read_bytes() == before


def test_vstack_and_healview(tmp_path):
    a = _hpx(tmp_path / "a.fits", [np.full(192, 1.0), np.full(192, 2.0)])
    b = _hpx(tmp_path / "b.fits", [np.full(192, 3.0)])
    r = _cli("vstack", a, b, "-o", tmp_path / "ab.fits")
    assert r.returncode == 0, r.stderr
    with fits.open(tmp_path / "ab.fits") as f:
        t = f["SKYMAP"]
        assert [c for c in t.columns.names] == ["CHANNEL1", "CHANNEL2", "CHANNEL3"]
        assert [float(t.data[c][0]) for c in t.columns.names] == [1.0, 2.0, 3.0]
        assert t.header["NSIDE"] == 4
    r = _cli("healview", tmp_path / "ab.fits", "-o", tmp_path / "ab.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ab.png").stat().st_size > 10_000
    # a partial map (explicit pixels) is drawn around its pixels
    import healpy as hp

    pix = hp.query_disc(64, hp.ang2vec(83.6, 22.0, lonlat=True), np.radians(3.0))
    p = _hpx(tmp_path / "part.fits", [np.arange(pix.size, dtype=float)], nside=64, pix=pix)
    r = _cli("healview", p, "-o", tmp_path / "part.png", "--plane", "0")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "part.png").stat().st_size > 10_000
    r = _cli("healview", p, "-o", tmp_path / "x.png", "--plane", "3")
    assert r.returncode == 2 and "--plane 3: the map has planes 0..0" in r.stderr


def _roi_table(path, names, glon, glat, npred, pos_err=None):
    t = Table({"name": names, "Source_Name": names, "GLON": glon, "GLAT": glat,
               "npred": npred, "pos_err": pos_err if pos_err is not None
               else np.full(len(names), 0.05), "ts": np.full(len(names), 30.0)})
    t.write(path)
    return path


def test_collect_and_cluster_sources(tmp_path):
    a = _roi_table(tmp_path / "a.fits", ["PS J0000.0+0000", "PS J0000.2+0000", "galdiff"],
                   [0.0, 0.05, 0.0], [0.0, 0.0, 0.0], [10.0, 10.0, 1e4])
    b = _roi_table(tmp_path / "b.fits", ["PS J0000.4+0000", "PS J0500.0+0500", "4FGL X"],
                   [0.1, 5.0, 7.0], [0.0, 5.0, 7.0], [10.0, 5.0, 3.0])
    npy = tmp_path / "c.npy"
    np.save(npy, np.array({"sources": {"PS J0100.0+0100": {"name": "PS J0100.0+0100",
                                                           "GLON": 20.0, "GLAT": 1.0,
                                                           "npred": 4.0, "pos_err": 0.1,
                                                           "ts": 26.0}}}, dtype=object),
            allow_pickle=True)
    out = tmp_path / "all.fits"
    r = _cli("collect-sources", a, b, npy, "-o", out)
    assert r.returncode == 0, r.stderr
    t = Table.read(out)
    assert list(t["name"]) == ["roi_00000_PS J0000.0+0000", "roi_00000_PS J0000.2+0000",
                               "roi_00001_PS J0000.4+0000", "roi_00001_PS J0500.0+0500",
                               "roi_00002_PS J0100.0+0100"]
    assert list(t["roi"]) == [0, 0, 1, 1, 2]
    r = _cli("collect-sources", a, "-o", tmp_path / "every.fits", "--all-sources")
    assert len(Table.read(tmp_path / "every.fits")) == 3
    # a chain 0 - 0.05 - 0.1 deg is one group at 0.07 deg (single linkage); its middle
    # member is nearest the centroid; the others stand alone
    cl = tmp_path / "cl.fits"
    r = _cli("cluster-sources", out, "-o", cl, "--dist", "0.07")
    assert r.returncode == 0, r.stderr
    c = Table.read(cl)
    assert list(c["cluster_size"]) == [3, 3, 3, 1, 1]
    ids = [str(x) if x is not np.ma.masked else "" for x in c["cluster_ids"]]
    assert ids == ["roi_00000_PS J0000.2+0000"] * 3 + ["", ""]
    assert list(c["duplicate"]) == [True, False, True, False, False]
    r = _cli("cluster-sources", out, "-o", tmp_path / "cl2.fits", "--dist", "0.07",
             "--remove-duplicates")
    assert len(Table.read(tmp_path / "cl2.fits")) == 3
    # by position errors: 0.05 deg apart with errors 0.05 each is 0.71 sigma
    r = _cli("cluster-sources", out, "-o", tmp_path / "s.fits", "--sigma", "0.5")
    assert list(Table.read(tmp_path / "s.fits")["cluster_size"]) == [1, 1, 1, 1, 1]
    r = _cli("cluster-sources", out, "-o", tmp_path / "s1.fits", "--sigma", "1.0")
    assert list(Table.read(tmp_path / "s1.fits")["cluster_size"]) == [3, 3, 3, 1, 1]
    r = _cli("cluster-sources", out, "-o", tmp_path / "n.fits")
    assert r.returncode == 2 and "exactly one of --dist (deg) and --sigma" in r.stderr
