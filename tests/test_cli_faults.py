"""Faults give one line through the command line: Ctrl-C (exit 130, no temporary directory
left), a full disk and a read-only folder, a truncated gzip FT1, an FT1 without events, a
non-UTF-8 recipe, a folder that is no run given to ls/show/export; `fermixr ls` tells stale
from interrupted and missing, and `ls --verify` names a damaged chunk."""

from __future__ import annotations

import errno
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml



def _default_sigint():
    """In the child: Ctrl-C's default action, so Python installs its own handler.  A test
    suite started in the background of a non-interactive shell inherits SIGINT ignored,
    and Python then leaves it ignored: the CLI's Ctrl-C handling would not be tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "quickstart.yaml"
DATA = EXAMPLE.parent / "data"


def _recipe(tmp_path, name="recipe.yaml", steps=("setup",), **changes) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for key in ("evfile", "scfile", "caldb"):
        doc["data"][key] = str((EXAMPLE.parent / doc["data"][key]).resolve())
    doc["model"]["catalogs"] = [str((EXAMPLE.parent / c).resolve())
                                for c in doc["model"]["catalogs"]]
    doc["model"]["isodiff"] = str((EXAMPLE.parent / doc["model"]["isodiff"]).resolve())
    for section, values in changes.items():
        doc.setdefault(section, {}).update(values)
    doc["steps"] = list(steps)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def _cli(*args, env=None, prelude=None):
    """``fermixr ARGS`` in a subprocess; ``prelude``: Python run first (fault injection),
    then the command line's main()."""
    e = dict(os.environ)
    e.update(env or {})
    if prelude is None:
        cmd = [sys.executable, "-m", "fermixr.cli", *map(str, args)]
    else:
        code = prelude + "\nimport sys\nfrom fermixr.cli import main\nsys.exit(main(sys.argv[1:]))\n"
        cmd = [sys.executable, "-c", code, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=e)


def _one_error_line(r, code):
    assert r.returncode == code, r.stderr
    # besides the progress lines of the steps that ran ("      gti: computing",
    # "[1/2] gti computed ..."), the one line
    lines = [ln for ln in r.stderr.splitlines()
             if not ln.startswith(("fermixr: warning", "[", "      "))]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def _tmp_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp*")) if root.exists() else []


# --- Ctrl-C ------------------------------------------------------------------------------

def test_ctrl_c_one_line_exit_130_no_temporary_directory(tmp_path):
    out = tmp_path / "run"
    err = tmp_path / "stderr.txt"
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "fermixr.cli", "run", str(EXAMPLE),
                              "--outdir", str(out)], stdout=f, stderr=f, cwd=REPO,
                             preexec_fn=_default_sigint)
        t0 = time.monotonic()
        while "computed in" not in err.read_text() and p.poll() is None:
            assert time.monotonic() - t0 < 120
            time.sleep(0.05)
        time.sleep(0.2)
        before = len(err.read_text())
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("no exit 60 s after SIGINT:\n" + err.read_text()) from None
    after = err.read_text()[before:].strip().splitlines()
    assert p.returncode == 130, err.read_text()
    # progress lines of the step under way may still come out between the last read and
    # the signal; what the interrupt itself prints is one line, and no traceback
    said = [ln for ln in after if not ln.startswith((" ", "["))]
    assert said == [after[-1]] and "Traceback" not in "\n".join(after), after
    assert after[-1].startswith("fermixr: interrupted (Ctrl-C)")
    assert _tmp_dirs(out) == []
    assert (out / "products" / "gti").exists()       # what finished is kept


# --- full disk, read-only folder ----------------------------------------------------------

_DISK_FULL = """
import errno, os
import fermixr.engine.store as st
_orig = st._to_zarr
def _full(ds, path):
    _orig(ds, path)                       # half a product on disk, then the disk is full
    if "ltcube" in str(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
st._to_zarr = _full
"""


def test_disk_full_one_line_exit_1_nothing_half_written(tmp_path):
    out = tmp_path / "run"
    r = _cli("run", _recipe(tmp_path, steps=["ltcube"]), "--outdir", out, prelude=_DISK_FULL)
    line = _one_error_line(r, 1)
    assert line.startswith("fermixr: failed: ") and "ltcube-" in line, line
    assert "No space left on device" in line and "the disk is full" in line
    assert _tmp_dirs(out / ".store") == []
    assert (out / "products" / "gti").exists() and not (out / "products" / "ltcube").exists()


_READ_ONLY = """
import errno, os, pathlib
_mkdir = pathlib.Path.mkdir
def _ro(self, *a, **k):
    if str(self).startswith(os.environ["RO_DIR"]):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
    return _mkdir(self, *a, **k)
pathlib.Path.mkdir = _ro
"""


def test_read_only_output_folder_one_line_exit_2(tmp_path):
    out = tmp_path / "ro" / "run"
    r = _cli("run", _recipe(tmp_path, steps=["gti"]), "--outdir", out, prelude=_READ_ONLY,
             env={"RO_DIR": str(tmp_path / "ro")})
    line = _one_error_line(r, 2)
    assert line.startswith(f"fermixr: error: {out}") and "Read-only file system" in line
    assert "--outdir" in line


def _mount_tmpfs(path: Path, opts: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_real_full_and_read_only_filesystems(tmp_path):
    """The same on a tiny tmpfs and a read-only one, where this test may mount them."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    if not _mount_tmpfs(full, "size=300k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        recipe = _recipe(tmp_path, steps=["ltcube"])
        r = _cli("run", recipe, "--outdir", full / "run")
        line = _one_error_line(r, 1)
        assert "No space left on device" in line and str(full / "run") in line, line
        assert _tmp_dirs(full) == []
        if _mount_tmpfs(ro, "ro,size=64k"):
            try:
                line = _one_error_line(_cli("run", recipe, "--outdir", ro / "run"), 2)
                assert str(ro / "run") in line and "Read-only file system" in line
            finally:
                subprocess.run(["umount", str(ro)])
    finally:
        subprocess.run(["umount", str(full)])


def test_error_line_mapping():
    from fermixr.cli import error_line
    from fermixr.errors import InputFileError, StepError

    code, line = error_line(OSError(errno.ENOSPC, "No space left on device", "/out/x"))
    assert code == 1 and line.startswith("fermixr: failed: /out/x: No space left on device")
    code, line = error_line(OSError(errno.EROFS, "Read-only file system", "/out"))
    assert code == 2 and line.startswith("fermixr: error: /out: Read-only file system")
    code, _ = error_line(PermissionError(errno.EACCES, "Permission denied", "/out"))
    assert code == 2
    try:                                  # a step's error wrapping a full disk
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/out/roi.fits")
        except OSError as exc:
            raise StepError("step 'write_roi' failed") from exc
    except StepError as exc:
        code, line = error_line(exc)
    assert code == 1 and "/out/roi.fits: No space left on device" in line
    try:                                  # a fermixr error says itself what is wrong
        try:
            raise PermissionError(errno.EACCES, "Permission denied", "/x/ft1.fits")
        except OSError:
            raise InputFileError("data.evfile: '/x/ft1.fits' cannot be read") from None
    except InputFileError as exc:
        assert error_line(exc) == (2, "fermixr: error: data.evfile: '/x/ft1.fits' cannot "
                                      "be read")


# --- bad input files ------------------------------------------------------------------------

def test_truncated_gzip_ft1(tmp_path):
    raw = gzip.compress((DATA / "ft1.fits").read_bytes())
    trunc = tmp_path / "ft1.fits.gz"
    trunc.write_bytes(raw[: int(len(raw) * 0.95)])
    out = tmp_path / "run"
    line = _one_error_line(_cli("run", _recipe(tmp_path, data={"evfile": str(trunc)}),
                                "--outdir", out), 2)
    assert line.startswith("fermixr: error: data.evfile: ") and str(trunc) in line
    assert "truncated" in line
    assert not (out / "products").exists()


def test_zero_event_ft1(tmp_path):
    from astropy.io import fits

    zero = tmp_path / "ft1_empty.fits"
    with fits.open(DATA / "ft1.fits") as h:
        h["EVENTS"].data = h["EVENTS"].data[:0]
        h.writeto(zero)
    out = tmp_path / "run"
    line = _one_error_line(_cli("run", _recipe(tmp_path, data={"evfile": str(zero)}),
                                "--outdir", out), 2)
    assert str(zero) in line and "no events" in line
    assert not (out / "products").exists()


def test_non_utf8_recipe(tmp_path):
    p = _recipe(tmp_path)
    p.write_bytes(b"# r\xe9sum\xe9 of the Crab\n" + p.read_bytes())
    for cmd in ("run", "validate"):
        r = _cli(cmd, p)
        assert r.returncode == 2, r.stderr
        assert str(p) in r.stderr and "line 1" in r.stderr and "UTF-8" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize("cmd", ["ls", "show", "export"])
def test_non_run_path(tmp_path, cmd):
    (tmp_path / "notes.txt").write_text("not a run")
    for path in (tmp_path, tmp_path / "nowhere"):
        line = _one_error_line(_cli(cmd, path), 2)
        assert line.startswith("fermixr: error: ") and repr(str(path)) in line, line


# --- ls: fresh / stale / interrupted / missing, --verify ---------------------------------------

def _ls(run_dir, recipe=None) -> dict:
    args = ["ls", run_dir] + (["--recipe", recipe] if recipe else [])
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    return {ln.split()[0]: ln.split()[2] for ln in r.stdout.splitlines()[1:]}


def test_ls_tells_stale_interrupted_missing(tmp_path):
    recipe = _recipe(tmp_path, steps=["counts"])
    out = tmp_path / "run"
    # a run killed while its first product (gti) is written but not committed
    p = subprocess.Popen([sys.executable, "-m", "fermixr.cli", "run", str(recipe), "--outdir",
                          str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         cwd=REPO, env=dict(os.environ, FERMIXR_DEBUG_PAUSE_BEFORE_COMMIT="60"))
    t0 = time.monotonic()
    while not _tmp_dirs(out / ".store"):
        assert p.poll() is None and time.monotonic() - t0 < 60
        time.sleep(0.05)
    p.kill()
    p.wait()
    assert _ls(out, recipe) == {"gti": "interrupted", "events": "missing", "counts": "missing"}

    r = _cli("run", recipe, "--outdir", out)
    assert r.returncode == 0, r.stderr
    assert _ls(out) == {"gti": "fresh", "events": "fresh", "counts": "fresh"}
    # other inputs: the names point to products whose keys are not the recipe's
    other = _recipe(tmp_path, "other.yaml", steps=["counts", "ltcube"], selection={"zmax": 80})
    states = _ls(out, other)
    assert states["gti"] == "fresh"          # the GTIs do not depend on zmax here
    assert states["events"] == "stale" and states["counts"] == "stale"
    assert states["ltcube"] == "missing"


def test_ls_verify_names_a_damaged_chunk(tmp_path):
    recipe = _recipe(tmp_path, steps=["counts"])
    out = tmp_path / "run"
    assert _cli("run", recipe, "--outdir", out).returncode == 0
    r = _cli("ls", out, "--verify")
    assert r.returncode == 0 and "3 product(s) read, none damaged" in r.stdout, r.stderr
    target = (out / "products" / "counts").resolve()
    chunks = sorted((p for p in target.rglob("*") if p.is_file() and "/c/" in p.as_posix()
                     and p.stat().st_size > 200), key=lambda p: -p.stat().st_size)
    chunk = chunks[0]
    b = bytearray(chunk.read_bytes())
    b[len(b) // 2] ^= 0xFF
    chunk.write_bytes(bytes(b))
    r = _cli("ls", out, "--verify")
    assert r.returncode == 1
    damaged = [ln for ln in r.stdout.splitlines() if ln.startswith("damaged:")]
    assert damaged == [ln for ln in damaged if str(chunk) in ln] and len(damaged) == 1, r.stdout
    assert damaged[0].startswith("damaged: counts: ")
    assert "1 damaged" in r.stderr


def test_ctrl_c_landing_in_a_callback_from_c_is_raised_after_it():
    """numba's LLVM object cache calls back into Python; a Ctrl-C landing there is printed
    as an 'Exception ignored' traceback and lost unless the CLI sends it again."""
    code = (
        "import ctypes, sys, time\n"
        "from fermixr import cli\n"
        "sys.unraisablehook = cli._unraisable\n"
        "def cb():\n"
        "    raise KeyboardInterrupt\n"
        "f = ctypes.CFUNCTYPE(None)(cb)\n"
        "try:\n"
        "    f()\n"
        "    time.sleep(5)\n"
        "    print('lost')\n"
        "except KeyboardInterrupt:\n"
        "    print('raised')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=REPO, preexec_fn=_default_sigint)
    assert r.stdout.strip() == "raised", r.stdout + r.stderr
    assert "Traceback" not in r.stderr
