"""Science Tools XML source models: read a ``<source_library>`` into a :class:`SkyModel`
and write one back in the layout gtlike, gtsrcmaps and Fermipy read.

Layout::

    <source_library title="source library">
      <source name="Crab" type="PointSource">
        <spectrum type="PowerLaw2">
          <parameter name="Integral" value="1.0" scale="1e-07" min="1e-07" max="1000" free="1"/>
          ...
        </spectrum>
        <spatialModel type="SkyDirFunction">
          <parameter name="RA" value="83.6331" scale="1" min="-360" max="360" free="0"/>
          ...
        </spatialModel>
      </source>
      <source name="isodiff" type="DiffuseSource">
        <spectrum type="FileFunction" file="iso_P8R2_SOURCE_V6_v06.txt"> ... </spectrum>
        <spatialModel type="ConstantValue"> ... </spatialModel>
      </source>
    </source_library>

Reading
-------
* Spectral parameters are put in the order of the spectral model (what
  :meth:`Source.spectral_values` relies on); parameters a file leaves out take the model's
  defaults, as the Science Tools do.
* GammaLib spellings found in older test files are translated: spatial ``DiffuseIsotropic``
  -> ``ConstantValue``, ``DiffuseMapCube`` -> ``MapCubeFunction``, ``DiffuseMap`` ->
  ``SpatialMap``; spectrum ``Constant`` (``Normalization``) -> ``ConstantValue``
  (``Value``); a ``PowerLaw`` given by ``PhotonFlux``/``Integral`` with ``LowerLimit`` and
  ``UpperLimit`` is the integral-flux power law ``PowerLaw2``; ``PhotonFlux`` ->
  ``Integral``, ``PivotEnergy`` -> ``Scale``.  The type written in the file is kept in
  ``Source.meta["xml_spectrum_type"]``.
* Template and table file names: ``$VAR``, ``${VAR}`` and the Science Tools' ``$(VAR)`` are
  expanded, ``~`` too, and relative names are taken from the XML file's folder.  Files are
  not required to exist unless ``check_files=True`` (a Science Tools model may name a map
  cube whose source maps were precomputed).
* Other attributes of ``<source>``, ``<spectrum>`` and ``<spatialModel>`` (``apply_edisp``,
  ``map_based_integral``, catalog columns written as attributes ...) are kept in ``meta`` and
  written back.

Errors: a file that does not parse raises :class:`~fermixr.errors.FileFormatError` naming
the file, line and column; unknown spectral or spatial types, unknown or malformed
parameters raise it naming the file, the line, the source and the offending value.
"""

from __future__ import annotations

import math
import os
import re
import xml.parsers.expat
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..errors import FermixrError, FileFormatError, InputFileError, ModelError
from ..io.model_xml import read_xml_bytes, write_text_atomic
from ..io.paths import expand_path
from .parameters import Parameter
from .skymodel import SkyModel
from .source import Source
from .spatial import SPATIAL_PARAMS, XML_FUNCTION, spatial_type

__all__ = ["read_xml", "parse_xml", "write_xml", "to_xml_string", "expand_path",
           "spectral_defaults", "make_spectral_params"]

# GammaLib / legacy spellings of spatial types that the spatial module does not list
_XML_SPATIAL_ALIASES = {"DiffuseIsotropic": "ConstantValue", "DiffuseMapCube": "MapCubeFunction",
                        "DiffuseMap": "SpatialMap", "DiffuseConst": "ConstantValue"}
# GammaLib / legacy spellings of spectral types
_XML_SPECTRAL_ALIASES = {"Constant": "ConstantValue"}
# parameter renames per (canonical) spectral type; "*" applies to every type
_PARAM_ALIASES = {
    "*": {"PhotonFlux": "Integral", "PivotEnergy": "Scale"},
    "ConstantValue": {"Normalization": "Value"},
}
_SPATIAL_PARAM_ALIASES = {
    "SpatialMap": {"Normalization": "Prefactor"},
    "MapCubeFunction": {"Prefactor": "Normalization", "Value": "Normalization"},
    "ConstantValue": {"Normalization": "Value"},
}


# --------------------------------------------------------------------------------------
# spectral defaults from the spectral registry
# --------------------------------------------------------------------------------------
def _registry():
    from . import spectral  # imported lazily: written alongside this module

    return spectral


def _spectral_class(tag: str):
    """The registered spectral model class for ``tag``, or None when unknown."""
    try:
        return _registry().get_spectral_model(tag)
    except (FermixrError, KeyError, LookupError, ValueError):
        return None


def spectral_tag(cls, fallback: str) -> str:
    for attr in ("tag", "name", "type"):
        t = getattr(cls, attr, None)
        if isinstance(t, str) and t:
            return t
    return fallback


def spectral_defaults(tag: str) -> tuple[str, tuple[Parameter, ...]]:
    """(canonical tag, default parameters in model order) of spectral type ``tag``, in
    the Science Tools' XML convention; ModelError naming the type when it is unknown."""
    cls = _spectral_class(tag)
    if cls is None:
        alias = _XML_SPECTRAL_ALIASES.get(tag)
        cls = _spectral_class(alias) if alias else None
        if cls is None:
            # let the registry's own message (which lists the known tags) through
            try:
                _registry().get_spectral_model(tag)
            except FermixrError as e:
                raise ModelError(f"unknown spectral type {tag!r}: {e}") from None
            raise ModelError(f"unknown spectral type {tag!r}")
    pars = []
    for spec in cls.params:
        pars.append(Parameter(name=spec.name, value=float(spec.value), scale=float(spec.scale),
                              min=None if spec.min is None else float(spec.min),
                              max=None if spec.max is None else float(spec.max),
                              free=bool(spec.free)))
    return spectral_tag(cls, tag), tuple(pars)


def make_spectral_params(tag: str, given: dict[str, Parameter],
                         where: str = "") -> tuple[str, tuple[Parameter, ...]]:
    """Complete ``given`` parameters (name -> Parameter) with the defaults of ``tag`` and
    put them in model order; ModelError for a parameter the model does not have."""
    canon, defaults = spectral_defaults(tag)
    names = [p.name for p in defaults]
    unknown = [k for k in given if k not in names]
    if unknown:
        raise ModelError(f"{where}spectral type {canon!r} has no parameter "
                         f"{', '.join(map(repr, unknown))}; its parameters are "
                         f"{', '.join(names)}")
    return canon, tuple(given.get(p.name, p) for p in defaults)


# --------------------------------------------------------------------------------------
# a tiny element tree with line numbers (expat)
# --------------------------------------------------------------------------------------
class _Node:
    __slots__ = ("tag", "attrib", "children", "line")

    def __init__(self, tag, attrib, line):
        self.tag = tag
        self.attrib = dict(attrib)
        self.children: list[_Node] = []
        self.line = line

    def findall(self, tag):
        return [c for c in self.children if c.tag == tag]


def _parse_tree(data: bytes | str, label: str) -> _Node:
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def start(tag, attrs):
        node = _Node(tag, attrs, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(node)
        else:
            root.append(node)
        stack.append(node)

    def end(tag):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        raise FileFormatError(f"{label}: line {e.lineno}, column {e.offset + 1}: the XML does "
                              f"not parse ({xml.parsers.expat.ErrorString(e.code)})") from None
    if not root:
        raise FileFormatError(f"{label}: no XML element found")
    return root[0]


# --------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------
def read_xml(path: str | os.PathLike, *, check_files: bool = False,
             env: dict | None = None) -> SkyModel:
    """Read a Science Tools XML model file into a :class:`SkyModel` (sources in file order).

    ``check_files``: raise InputFileError when a FileFunction table or a spatial template
    the model names does not exist."""
    p, content = read_xml_bytes(path, env=env)
    return parse_xml(content, base=p.parent, label=str(p), check_files=check_files, env=env)


def parse_xml(text: str | bytes, *, base: str | os.PathLike | None = None,
              label: str = "<xml string>", check_files: bool = False,
              env: dict | None = None) -> SkyModel:
    """Parse the text of an XML model; relative file names are taken from ``base``
    (default: the current folder)."""
    root = _parse_tree(text, label)
    base = Path(base) if base is not None else Path.cwd()
    if root.tag != "source_library":
        raise FileFormatError(f"{label}: line {root.line}: root element is <{root.tag}>; "
                              "expected <source_library>")
    sources = []
    seen: dict[str, int] = {}
    for node in root.findall("source"):
        src = _source_from_node(node, label, base, check_files, env)
        key = re.sub(r"\s+", "", src.name).lower()
        if key in seen:
            raise FileFormatError(f"{label}: line {node.line}: source {src.name!r} is defined "
                                  f"twice (first at line {seen[key]})")
        seen[key] = node.line
        sources.append(src)
    return SkyModel(tuple(sources))


def _num(text, what: str) -> float:
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        raise FileFormatError(f"{what}: got {text!r}; expected a number") from None


def _flag(text, what: str) -> bool:
    t = str(text).strip().lower()
    if t in ("1", "true", "yes"):
        return True
    if t in ("0", "false", "no", ""):
        return False
    raise FileFormatError(f"{what}: got {text!r}; expected 0/1 or true/false")


def _read_params(node: _Node, where: str) -> dict[str, Parameter]:
    out: dict[str, Parameter] = {}
    for pn in node.findall("parameter"):
        a = pn.attrib
        w = f"{where}, line {pn.line}"
        name = a.get("name")
        if not name:
            raise FileFormatError(f"{w}: <parameter> without a name")
        if "value" not in a:
            raise FileFormatError(f"{w}: parameter {name!r} has no value")
        if name in out:
            raise FileFormatError(f"{w}: parameter {name!r} is given twice")
        wp = f"{w}: parameter {name!r}"
        out[name] = Parameter(
            name=name, value=_num(a["value"], f"{wp} value"),
            scale=_num(a.get("scale", "1"), f"{wp} scale"),
            min=_num(a["min"], f"{wp} min") if a.get("min", "").strip() else None,
            max=_num(a["max"], f"{wp} max") if a.get("max", "").strip() else None,
            free=_flag(a.get("free", "0"), f"{wp} free"),
            error=_num(a["error"], f"{wp} error") if a.get("error", "").strip() else None)
        if out[name].scale == 0 or not math.isfinite(out[name].scale):
            raise FileFormatError(f"{wp}: scale {a.get('scale')!r} is not a non-zero number")
    return out


def _rename(pars: dict[str, Parameter], table: dict[str, str]) -> dict[str, Parameter]:
    out = {}
    for k, p in pars.items():
        nk = table.get(k, k)
        if nk in pars and nk != k:      # both spellings given: keep the canonical one
            continue
        out[nk] = p.replace(name=nk)
    return out


def _spectrum_from_node(node: _Node, where: str):
    xml_type = node.attrib.get("type")
    if not xml_type:
        raise FileFormatError(f"{where}, line {node.line}: <spectrum> has no type")
    pars = _read_params(node, where)
    tag = _XML_SPECTRAL_ALIASES.get(xml_type, xml_type)
    names = set(pars)
    # an integral-flux power law written as type PowerLaw (GammaLib's old spelling)
    if tag == "PowerLaw" and names & {"PhotonFlux", "Integral"} and \
            {"LowerLimit", "UpperLimit"} <= names:
        tag = "PowerLaw2"
    try:
        canon, defaults = spectral_defaults(tag)
    except ModelError as e:
        raise FileFormatError(f"{where}, line {node.line}: {e}") from None
    pars = _rename(pars, _PARAM_ALIASES["*"])
    pars = _rename(pars, _PARAM_ALIASES.get(canon, {}))
    try:
        canon, params = make_spectral_params(canon, pars)
    except ModelError as e:
        raise FileFormatError(f"{where}, line {node.line}: {e}") from None
    return xml_type, canon, params


def _spatial_from_node(node: _Node, where: str):
    xml_type = node.attrib.get("type")
    if not xml_type:
        raise FileFormatError(f"{where}, line {node.line}: <spatialModel> has no type")
    try:
        kind = spatial_type(_XML_SPATIAL_ALIASES.get(xml_type, xml_type))
    except ModelError as e:
        raise FileFormatError(f"{where}, line {node.line}: {e}") from None
    pars = _rename(_read_params(node, where), _SPATIAL_PARAM_ALIASES.get(kind, {}))
    defaults = SPATIAL_PARAMS[kind]
    names = [p.name for p in defaults]
    unknown = [k for k in pars if k not in names]
    if unknown:
        raise FileFormatError(f"{where}, line {node.line}: spatial model {xml_type!r} has no "
                              f"parameter {', '.join(map(repr, unknown))}; its parameters "
                              f"are {', '.join(names)}")
    for req in ("RA", "DEC"):
        if req in names and req not in pars:
            raise FileFormatError(f"{where}, line {node.line}: spatial model {xml_type!r} "
                                  f"needs parameter {req}")
    return xml_type, kind, tuple(pars.get(p.name, p) for p in defaults)


def _source_from_node(node: _Node, label: str, base: Path, check_files: bool,
                      env) -> Source:
    name = node.attrib.get("name")
    if not name or not name.strip():
        raise FileFormatError(f"{label}: line {node.line}: <source> without a name")
    where = f"{label}: source {name!r}"
    specs = node.findall("spectrum")
    spats = node.findall("spatialModel")
    if len(specs) != 1:
        raise FileFormatError(f"{where}, line {node.line}: expected one <spectrum>, "
                              f"found {len(specs)}")
    if len(spats) != 1:
        raise FileFormatError(f"{where}, line {node.line}: expected one <spatialModel>, "
                              f"found {len(spats)}")
    xml_spec, tag, spectral = _spectrum_from_node(specs[0], where)
    xml_spat, kind, spatial = _spatial_from_node(spats[0], where)

    def file_of(n: _Node, what: str) -> str | None:
        f = n.attrib.get("file")
        if f is None or not f.strip():
            return None
        path = expand_path(f.strip(), base, env)
        if check_files and not os.path.isfile(path):
            raise InputFileError(f"{where}, line {n.line}: {what} {f!r} not found "
                                 f"(looked for {path})")
        return path

    spectrum_file = file_of(specs[0], "spectrum file")
    spatial_file = file_of(spats[0], "spatial template")
    if tag == "FileFunction" and spectrum_file is None:
        raise FileFormatError(f"{where}, line {specs[0].line}: a FileFunction spectrum needs "
                              "a file attribute")
    if kind in ("SpatialMap", "MapCubeFunction") and spatial_file is None:
        raise FileFormatError(f"{where}, line {spats[0].line}: a {kind} spatial model needs a "
                              "file attribute")
    meta = {"xml_spectrum_type": xml_spec, "xml_spatial_type": xml_spat,
            "xml_line": node.line}
    extra_src = {k: v for k, v in node.attrib.items() if k not in ("name", "type")}
    extra_spec = {k: v for k, v in specs[0].attrib.items() if k not in ("type", "file")}
    extra_spat = {k: v for k, v in spats[0].attrib.items() if k not in ("type", "file")}
    if extra_src:
        meta["xml_attrs"] = extra_src
    if extra_spec:
        meta["xml_spectrum_attrs"] = extra_spec
    if extra_spat:
        meta["xml_spatial_attrs"] = extra_spat
    if node.attrib.get("type"):
        meta["xml_source_type"] = node.attrib["type"]
    try:
        return Source(name=name.strip(), spectrum=tag, spectral=spectral, spatial_model=kind,
                      spatial=spatial, spatial_file=spatial_file, spectrum_file=spectrum_file,
                      meta=meta)
    except ModelError as e:
        raise FileFormatError(f"{where}, line {node.line}: {e}") from None


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    x = float(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 or math.copysign(1, x) > 0 else "0"
    return repr(x)


def _param_xml(p: Parameter, indent: str) -> str:
    attrs = [("name", p.name), ("value", _fmt(p.value)), ("scale", _fmt(p.scale))]
    if p.min is not None:
        attrs.append(("min", _fmt(p.min)))
    if p.max is not None:
        attrs.append(("max", _fmt(p.max)))
    attrs.append(("free", "1" if p.free else "0"))
    if p.error is not None and math.isfinite(p.error):
        attrs.append(("error", _fmt(p.error)))
    return indent + "<parameter " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs) + "/>"


def _xml_path(path: str, folder: Path | None) -> str:
    if folder is not None and os.path.isabs(path):
        try:
            rel = Path(path).resolve().relative_to(folder.resolve())
            return rel.as_posix()
        except ValueError:
            pass
    return path


def _attrs(d: dict) -> str:
    return "".join(f" {k}={quoteattr(str(v))}" for k, v in d.items())


def to_xml_string(model: SkyModel, *, folder: str | os.PathLike | None = None,
                  title: str = "source library") -> str:
    """The XML text of ``model``.  File names under ``folder`` (the folder the XML will be
    written to) are written relative to it, others as absolute paths."""
    folder = Path(folder) if folder is not None else None
    lines = ['<?xml version="1.0" ?>', f"<source_library title={quoteattr(title)}>"]
    for s in model.sources:
        src_type = "PointSource" if s.spatial_model == "PointSource" else "DiffuseSource"
        extra = dict(s.meta.get("xml_attrs", {}) or {})
        lines.append(f"  <source name={quoteattr(s.name)} type={quoteattr(src_type)}"
                     f"{_attrs(extra)}>")
        spec_attrs = {"type": s.spectrum}
        if s.spectrum_file:
            spec_attrs["file"] = _xml_path(s.spectrum_file, folder)
        spec_attrs.update(s.meta.get("xml_spectrum_attrs", {}) or {})
        lines.append(f"    <spectrum{_attrs(spec_attrs)}>")
        lines.extend(_param_xml(p, "      ") for p in s.spectral)
        lines.append("    </spectrum>")
        spat_attrs = {"type": XML_FUNCTION.get(s.spatial_model, s.spatial_model)}
        if s.spatial_file:
            spat_attrs["file"] = _xml_path(s.spatial_file, folder)
        extra_spat = dict(s.meta.get("xml_spatial_attrs", {}) or {})
        if s.spatial_model == "SpatialMap":
            extra_spat.setdefault("map_based_integral", "true")
        spat_attrs.update(extra_spat)
        lines.append(f"    <spatialModel{_attrs(spat_attrs)}>")
        lines.extend(_param_xml(p, "      ") for p in s.spatial)
        lines.append("    </spatialModel>")
        lines.append("  </source>")
    lines.append("</source_library>")
    return "\n".join(lines) + "\n"


def write_xml(model: SkyModel, path: str | os.PathLike, *,
              title: str = "source library") -> Path:
    """Write ``model`` as a Science Tools XML file (atomically: a temporary sibling is
    renamed into place).  Template and table files in the XML's folder (or below) are
    written with relative names, others with absolute ones.  Returns the path."""
    p = Path(expand_path(path))
    return write_text_atomic(p, to_xml_string(model, folder=p.parent, title=title))
