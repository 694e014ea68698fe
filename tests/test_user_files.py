"""A user's files are safe: input files are identified by their content, a run never writes
over a file it did not create, a run folder is locked while a run writes into it, ``fermixr
export`` makes its folder, and ``write_roi``'s files are rewritten when they are not as
written."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from astropy.io import fits

from fermixr.engine import hashing
from fermixr.engine.hashing import FileHashCache, file_sha256
from fermixr.engine.run import RECIPE_COPY
from fermixr.engine.store import LOCK_FILE, RunLock, RunLockedError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"


def _cli(*args, check=True, env=None):
    r = subprocess.run([sys.executable, "-m", "fermixr.cli", *map(str, args)],
                       capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, **(env or {})))
    if check and r.returncode != 0:
        raise AssertionError(f"fermixr {' '.join(map(str, args))} exited {r.returncode}:\n"
                             f"{r.stderr}")
    return r


# ------------------------------------------------------------------- file identity --
def _rewrite_same_size_and_mtime(path: Path, change) -> None:
    """``change(path)`` in place, then the old mtime put back; the size must not move."""
    st = os.stat(path)
    time.sleep(0.05)                          # past the kernel's timestamp tick
    change(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = os.stat(path)
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns,
                                                           st.st_ino)


def _scale_table(path: Path) -> None:
    """Every dN/dE value times 3, written in place with the same number of characters."""
    old = path.read_bytes()
    lines = [ln.split() for ln in old.decode().splitlines()]
    new = "".join(f"{e} " + " ".join(f"{3 * float(v):.6e}" for v in rest) + "\n"
                  for e, *rest in lines).encode()
    assert len(new) == len(old) and new != old
    with open(path, "r+b") as f:
        f.write(new)


def _shift_one_energy(path: Path) -> None:
    with fits.open(path, mode="update") as h:
        h["EVENTS"].data["ENERGY"][0] *= 1.5


@pytest.mark.parametrize("name,change", [("iso_FXR_SYNTH_V1.txt", _scale_table),
                                         ("ft1.fits", _shift_one_energy)])
def test_content_change_with_same_size_and_mtime_gets_a_new_hash(tmp_path, monkeypatch, name,
                                                                   change):
    """A FileFunction table and an FT1 rewritten in place with their size and mtime kept
    get a new hash, from the hash cache kept on disk between runs as within one."""
    monkeypatch.setattr(FileHashCache, "RACY_SECONDS", 0.0)   # remember every entry
    f = tmp_path / name
    shutil.copy(EXAMPLE.parent / "data" / name, f)
    cache_file = tmp_path / "file-hashes.json"
    c = FileHashCache(cache_file)
    before = c.hash(f)
    c.save()
    assert json.loads(cache_file.read_text())[str(f.resolve())][-1] == before
    _rewrite_same_size_and_mtime(f, change)
    after = FileHashCache(cache_file).hash(f)
    assert after != before and after == file_sha256(f)
    assert c.hash(f) == after


def test_replaced_file_and_fresh_file_are_hashed_again(tmp_path, monkeypatch):
    """A file replaced by another (new inode) with size and mtime copied is hashed again;
    a file changed within RACY_SECONDS of being hashed is not remembered, so even a
    rewrite inside one timestamp tick is seen; an old untouched file is not read again."""
    f = tmp_path / "iso.txt"
    shutil.copy(EXAMPLE.parent / "data" / "iso_FXR_SYNTH_V1.txt", f)
    c = FileHashCache(tmp_path / "h.json")
    h0 = c.hash(f)
    assert str(f.resolve()) not in c._data            # changed just now: not remembered
    _scale_table(f)                                   # no sleep: possibly the same tick
    st = os.stat(f)
    h1 = c.hash(f)
    assert h1 != h0 and h1 == file_sha256(f)
    # replaced by a copy with the same size and mtime
    monkeypatch.setattr(FileHashCache, "RACY_SECONDS", 0.0)
    c.hash(f)
    other = tmp_path / "other.txt"
    shutil.copy(EXAMPLE.parent / "data" / "iso_FXR_SYNTH_V1.txt", other)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    assert os.stat(f).st_size == st.st_size and os.stat(f).st_mtime_ns == st.st_mtime_ns
    assert c.hash(f) == h0
    # an unchanged, remembered file is served without reading it
    reads = []
    monkeypatch.setattr(hashing, "file_sha256", lambda p: reads.append(p) or "x")
    assert c.hash(f) == h0 and reads == []


# ------------------------------------------------------------- the run folder lock --
def test_run_lock_excludes_a_second_holder_and_is_released(tmp_path):
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on host "):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()
    with RunLock(tmp_path):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK_FILE).parent.mkdir(parents=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps(
        {"pid": int(dead), "host": socket.gethostname(), "started_utc": "2026-01-01T00:00:00Z"}))
    with pytest.warns(UserWarning, match=rf"stale lock .*pid {dead} on host"):
        with RunLock(tmp_path):
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


# -------------------------------------------- a run whose recipe is in its own folder --
@pytest.fixture(scope="module")
def run_in_recipe_folder(tmp_path_factory, example_cli_run):
    """The example recipe (setup and write_roi) saved in a folder of its own and run there
    without --outdir, so the run folder is the recipe's folder.  The folder starts with a
    copy of the product store of the session's run of the example (the same data
    products: this run finds them there)."""
    folder = tmp_path_factory.mktemp("myanalysis")
    shutil.copytree(example_cli_run[0] / ".store", folder / ".store")
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb"):
        doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    doc["model"]["catalogs"] = [str((EXAMPLE.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((EXAMPLE.parent / doc["model"]["isodiff"]).resolve())
    doc["steps"] = ["setup", {"write_roi": {"outfile": "my_roi"}}]
    recipe = folder / "recipe.yaml"
    text = "# my analysis: the example with its fit left out\n" + yaml.safe_dump(doc)
    recipe.write_text(text)
    r = _cli("run", recipe, "-q")
    return folder, recipe, text.encode(), r


def test_recipe_in_the_run_folder_is_not_overwritten(run_in_recipe_folder):
    folder, recipe, original, _ = run_in_recipe_folder
    assert recipe.read_bytes() == original
    copy = folder / RECIPE_COPY
    assert copy.is_file() and copy.read_bytes() != original
    assert copy.read_text().startswith("# written by fermixr run")
    assert (folder / "run.json").is_file() and (folder / "my_roi.fits").is_file()
    # `fermixr ls` reads the run's own copy
    ls = _cli("ls", folder).stdout
    assert "counts" in ls and "fresh" in ls


def test_ls_reads_a_run_folder_of_an_earlier_version(run_in_recipe_folder):
    """Earlier versions kept the run's recipe as <outdir>/recipe.yaml: ls still reads it."""
    folder = run_in_recipe_folder[0]
    copy = folder / RECIPE_COPY
    aside = copy.with_name("aside.yaml")
    copy.rename(aside)
    try:
        r = _cli("ls", folder)
        assert r.returncode == 0, r.stderr
        assert "counts" in r.stdout and "fresh" in r.stdout
    finally:
        aside.rename(copy)


def test_export_without_dest_creates_run_export(run_in_recipe_folder):
    folder = run_in_recipe_folder[0]
    assert not (folder / "export").exists()
    r = _cli("export", folder, "--format", "st")
    written = [Path(p) for p in r.stdout.split()]
    assert {p.name for p in written} == {"ltcube_00.fits", "ccube_00.fits", "bexpmap_00.fits",
                                         "srcmap_00.fits"}
    assert all(p.parent == folder / "export" for p in written)
    with fits.open(folder / "export" / "ccube_00.fits") as h:
        n = float(h[0].data.sum())
    import fermixr

    assert n == float(fermixr.open_run(folder)["counts"]["counts"].sum())
    assert n > 100


def test_second_run_into_a_locked_folder_stops_at_once_naming_the_holder(run_in_recipe_folder):
    folder, recipe, _, _ = run_in_recipe_folder
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from fermixr.engine.store import RunLock\n"
         f"lock = RunLock({str(folder)!r}).acquire(); print('held', flush=True); "
         "time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        manifest = (folder / "run.json").read_bytes()
        # another recipe into the same folder
        other = folder.parent / f"{folder.name}-other.yaml"
        doc = yaml.safe_load(recipe.read_text())
        doc["selection"]["emin"] = 1000
        other.write_text(yaml.safe_dump(doc))
        t0 = time.monotonic()
        r = _cli("run", other, "--outdir", folder, check=False)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert f"pid {holder.pid} on host {socket.gethostname()}" in lines[0]
        assert "started" in lines[0] and str(folder) in lines[0]
        assert time.monotonic() - t0 < 30
        assert (folder / "run.json").read_bytes() == manifest
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: the next run takes the lock over and exits 0
    r = _cli("run", recipe)
    assert "stale lock" in r.stderr and f"pid {holder.pid}" in r.stderr
    assert not (folder / LOCK_FILE).exists()


def test_two_recipes_started_together_into_one_folder_do_not_both_succeed(tmp_path):
    """Two different recipes into one folder: the second, started while the first writes,
    exits 2 and the first's products are all its own."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb"):
        doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    doc["model"]["catalogs"] = [str((EXAMPLE.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((EXAMPLE.parent / doc["model"]["isodiff"]).resolve())
    doc["steps"] = ["counts"]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(doc))
    doc["selection"]["emin"] = 1000
    b.write_text(yaml.safe_dump(doc))
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "fermixr.cli", "run", str(a), "--outdir", str(out)], cwd=REPO,
        env=dict(os.environ, FERMIXR_DEBUG_PAUSE_BEFORE_COMMIT="3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _cli("run", b, "--outdir", out, check=False)
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "in use by another fermixr run" in second.stderr
    # what the folder holds is the first recipe's, every product of it
    assert yaml.safe_load((out / RECIPE_COPY).read_text())["selection"]["emin"] == 100
    ls = _cli("ls", out, "--recipe", a).stdout.splitlines()[1:]
    assert ls and all(line.split()[2] == "fresh" for line in ls), ls


# ----------------------------------------------------------------- write_roi files --
def test_truncated_write_roi_file_is_rewritten_not_cached(run_in_recipe_folder):
    folder, recipe, _, _ = run_in_recipe_folder
    fits_file = folder / "my_roi.fits"
    whole = fits_file.read_bytes()
    product = json.loads((folder / "run.json").read_text())["analysis_steps"][-1]
    assert product["name"] == "write_roi"
    import fermixr

    rec = fermixr.open_run(folder).provenance("roi")["written_files"]
    assert rec["fits"]["size"] == len(whole)
    assert rec["fits"]["sha256"] == file_sha256(fits_file)
    assert set(rec) >= {"npy", "fits", "yaml", "zarr", "xml_00"}
    # untouched: cached
    _cli("run", recipe, "-q")
    steps = {s["name"]: s["status"] for s in
             json.loads((folder / "run.json").read_text())["analysis_steps"]}
    assert steps["write_roi"] == "cached"
    # truncated: written again, whole
    with open(fits_file, "r+b") as f:
        f.truncate(len(whole) // 2)
    _cli("run", recipe, "-q")
    steps = {s["name"]: s["status"] for s in
             json.loads((folder / "run.json").read_text())["analysis_steps"]}
    assert steps["write_roi"] == "computed"
    assert fits_file.stat().st_size == len(whole)
    with fits.open(fits_file) as h:
        assert len(h[1].data) == 4          # the three sources and the isotropic
    # an edit that keeps the size is seen too
    yaml_file = folder / "my_roi.yaml"
    text = yaml_file.read_bytes()
    yaml_file.write_bytes(text[:-2] + b"#\n")
    _cli("run", recipe, "-q")
    steps = {s["name"]: s["status"] for s in
             json.loads((folder / "run.json").read_text())["analysis_steps"]}
    assert steps["write_roi"] == "computed" and yaml_file.read_bytes() == text
