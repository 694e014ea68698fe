"""Loading a recipe: a Fermipy configuration (same sections, names and defaults) plus a
``steps:`` list.

:func:`load_recipe` reads YAML (a path, YAML text or a dict), merges keyword overrides over
it section by section as Fermipy's ``GTAnalysis(config, selection={...})`` does, renames
accepted old spellings (with a warning), warns about unknown sections and options, validates
everything against the schema generated from :mod:`fermixr.engine.options` -- reporting
every problem at once in one :class:`~fermixr.errors.RecipeError` -- and only then fills
defaults, resolves derived options and paths, and merges each component over the top level.

Nothing here reads data files (``check_files=True`` only checks that they exist).
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..errors import InputFileError, ModelError, RecipeError
from . import options as O

__all__ = [
    "Recipe",
    "RecipeWarning",
    "RecipeDeprecationWarning",
    "OptionWithoutEffectWarning",
    "load_recipe",
    "validate_file",
    "validate_recipe",
    "resolve_config",
    "merge_config",
    "format_path",
]


class RecipeWarning(UserWarning):
    """An option or section fermixr does not know (ignored), or an accepted other spelling."""


class OptionWithoutEffectWarning(RecipeWarning):
    """An option fermixr accepts for Fermipy compatibility but does not use (marked
    ``no_effect`` in the option table) was set to something other than its default."""


class RecipeDeprecationWarning(DeprecationWarning):
    """An old spelling (``erange``, ``roiOpt``) that is accepted and renamed."""


# ---------------------------------------------------------------------------------------
# YAML: Fermipy-compatible reading
# ---------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.2; PyYAML's 1.1 rules read it as a
    string) and refuses duplicate keys instead of silently keeping the last."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# replace the float resolver (keeping the others)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE,
                              list("-+0123456789."))


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            mark = key_node.start_mark
            raise RecipeError(
                f"{mark.name}, line {mark.line + 1}: key {key!r} appears twice in the same "
                "mapping; give it once"
            )
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}, line {mark.line + 1}, column {mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"{where}: not valid YAML: {problem}") from None


class _Dumper(yaml.SafeDumper):
    """Block-style dumper that never writes YAML anchors/aliases."""

    def ignore_aliases(self, data):
        return True


def _plain(obj):
    """Plain Python data from what a caller may pass in a dict or an override: numpy
    scalars and arrays, tuples, paths."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    mod = type(obj).__module__
    if mod == "numpy":
        if hasattr(obj, "tolist"):
            return _plain(obj.tolist())
    return obj


def _read_source(source) -> tuple[Any, Path | None]:
    """(data, recipe path or None) for a path, YAML text or a mapping."""
    if isinstance(source, Recipe):
        return source.to_dict(), source.path
    if isinstance(source, Mapping):
        return _plain(source), None
    if isinstance(source, os.PathLike):
        return _read_file(Path(source)), Path(source).resolve()
    if isinstance(source, str):
        s = source
        if "\n" not in s:
            p = Path(os.path.expandvars(os.path.expanduser(s)))
            if p.suffix.lower() in (".yaml", ".yml", ".json") or p.is_file():
                return _read_file(p), p.resolve()
        data = _parse_yaml(s, "<recipe text>")
        if not isinstance(data, dict):
            raise RecipeError(
                f"recipe text {s[:60]!r} is not a mapping of sections (got "
                f"{type(data).__name__}); if it is meant as a file path, that file does not "
                "exist"
            )
        return data, None
    raise RecipeError(
        f"recipe: got a {type(source).__name__}; expected a YAML file path, YAML text or a "
        "dict"
    )


def _read_file(p: Path) -> Any:
    if not p.is_file():
        raise InputFileError(f"recipe file {str(p)!r} does not exist")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"recipe file {str(p)!r} cannot be read: {exc.strerror or exc}"
                             ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise RecipeError(
            f"recipe file {str(p)!r}: byte {raw[exc.start]:#04x} on line {line} is not "
            "UTF-8; save the file as UTF-8"
        ) from None
    data = _parse_yaml(text, str(p))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"{p}: a recipe is a mapping of sections (fileio, data, selection, ...); got "
            f"{type(data).__name__}"
        )
    return data


# ---------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------


def format_path(parts: Iterable) -> str:
    """``['components', 0, 'binning', 'binsz']`` -> ``components[0].binning.binsz``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "<recipe>"


_TYPE_WORDS = {
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _fmt_num(x) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


def describe(schema: Mapping) -> str:
    """Words for what a (sub)schema accepts: ``a number > 0 (deg) or null``."""
    if "$ref" in schema and len(schema) <= 3:
        return "a mapping of options" if "section_" in schema["$ref"] else "a valid value"
    if "anyOf" in schema or "oneOf" in schema:
        subs = schema.get("anyOf") or schema.get("oneOf")
        return " or ".join(dict.fromkeys(describe(s) for s in subs))
    if "enum" in schema:
        vals = [v for v in schema["enum"]]
        shown = ", ".join("null" if v is None else repr(v) for v in vals
                          if not isinstance(v, bool))
        return f"one of {shown}"
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    words = []
    for t in types:
        w = _TYPE_WORDS.get(t, t)
        if t in ("number", "integer"):
            rng = []
            if "minimum" in schema:
                rng.append(f">= {_fmt_num(schema['minimum'])}")
            if "exclusiveMinimum" in schema:
                rng.append(f"> {_fmt_num(schema['exclusiveMinimum'])}")
            if "maximum" in schema:
                rng.append(f"<= {_fmt_num(schema['maximum'])}")
            if rng:
                w += " " + " and ".join(rng)
        elif t == "array":
            n0, n1 = schema.get("minItems"), schema.get("maxItems")
            if n0 is not None and n0 == n1:
                w += f" of {n0} items"
            elif n0:
                w += f" of at least {n0} items"
            items = schema.get("items")
            if isinstance(items, Mapping) and items:
                w += f" (each {describe(items)})"
        words.append(w)
    s = " or ".join(words) if words else "a valid value"
    if schema.get("x-unit"):
        s += f" (in {schema['x-unit']})"
    return s


def _value_repr(v) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _schema_error_message(err, prefix: tuple) -> str:
    path = format_path(prefix + tuple(err.absolute_path))
    if err.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        key = missing[0] if missing else "?"
        return f"{format_path(prefix + tuple(err.absolute_path) + (key,))}: required, not given"
    if err.validator in ("minItems", "maxItems"):
        return (f"{path}: got {_value_repr(err.instance)} ({len(err.instance)} items); "
                f"expected {describe(err.schema)}")
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        return f"{path}: {err.message}"
    return f"{path}: got {_value_repr(err.instance)}; expected {describe(err.schema)}"


# ---------------------------------------------------------------------------------------
# schema validation
# ---------------------------------------------------------------------------------------

_VALIDATORS: dict[str, Any] = {}


def _validator(defname: str):
    """A cached Draft 2020-12 validator of ``$defs/<defname>`` of the recipe schema."""
    v = _VALIDATORS.get(defname)
    if v is None:
        import jsonschema

        root = _schema()
        sub = {"$defs": root["$defs"], "$ref": f"#/$defs/{defname}"}
        v = jsonschema.Draft202012Validator(sub)
        _VALIDATORS[defname] = v
    return v


_SCHEMA_CACHE: dict = {}


def _schema() -> dict:
    if "s" not in _SCHEMA_CACHE:
        _SCHEMA_CACHE["s"] = O.recipe_schema()
    return _SCHEMA_CACHE["s"]


def _specific_errors(err) -> list:
    """For an anyOf/oneOf failure, the errors of the one branch whose type the value has
    (so a bad key inside a mapping is reported at its own path); else the error itself."""
    if err.validator not in ("anyOf", "oneOf") or not err.context:
        return [err]
    branches: dict[int, list] = {}
    for sub in err.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    matching = [errs for errs in branches.values()
                if not any(e.validator == "type" and not e.relative_path for e in errs)]
    if len(matching) != 1:
        return [err]
    out = []
    for e in matching[0]:
        out.extend(_specific_errors(e))
    return out


def _validate_against(defname: str, instance, prefix: tuple) -> list[str]:
    errs = []
    for e in _validator(defname).iter_errors(instance):
        errs.extend(_specific_errors(e))
    errs.sort(key=lambda e: [str(p) for p in e.absolute_path])
    return [_schema_error_message(e, prefix) for e in errs]


# ---------------------------------------------------------------------------------------
# normalisation (aliases, unknown keys) -- warns, never raises
# ---------------------------------------------------------------------------------------


def _warn(msg: str, category=RecipeWarning):
    warnings.warn(msg, category, stacklevel=4)


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _normalize_section(sec: str, body: dict, where: tuple, problems: list[str],
                       allowed: Mapping[str, O.Option] | None = None,
                       what: str | None = None) -> dict:
    """Rename aliases and drop (with a warning) unknown keys of one section mapping."""
    opts = allowed if allowed is not None else O.SECTIONS[sec]
    label = what or f"section {sec!r}"
    out: dict = {}
    aliases = O.OPTION_ALIASES.get(sec, {})
    for key, val in body.items():
        spec = opts.get(key)
        target = None
        if spec is not None and spec.alias_of:
            target = spec.alias_of
            _warn(f"{format_path(where + (key,))}: {key!r} is the old spelling of "
                  f"{target!r}; it is accepted and renamed -- write {target!r}",
                  RecipeDeprecationWarning)
        elif spec is None and key in aliases and aliases[key] in opts:
            target = aliases[key]
            _warn(f"{format_path(where + (key,))}: {label} spells this option {target!r}; "
                  f"{key!r} is accepted and renamed")
        if target is not None:
            if target in body:
                problems.append(
                    f"{format_path(where + (key,))}: both {key!r} and {target!r} are given; "
                    f"give only {target!r}")
                continue
            out[target] = val
            continue
        if spec is None:
            _warn(f"{format_path(where + (key,))}: unknown option {key!r} in {label} is "
                  f"ignored{_suggest(key, opts)}; known options: {', '.join(sorted(opts))}")
            continue
        out[key] = val
    return out


def _normalize_config(cfg: dict, where: tuple, problems: list[str], *,
                      top: bool) -> dict:
    out: dict = {}
    for key, val in cfg.items():
        name = key
        if key in O.SECTION_ALIASES:
            name = O.SECTION_ALIASES[key]
            _warn(f"{format_path(where + (key,))}: section {key!r} is spelled {name!r}; it is "
                  "accepted and renamed", RecipeDeprecationWarning)
            if name in cfg:
                problems.append(f"{format_path(where + (key,))}: both {key!r} and {name!r} "
                                f"are given; give only {name!r}")
                continue
        if top and name in ("steps", "components"):
            out[name] = val
            continue
        if not top and name in ("steps", "components"):
            problems.append(f"{format_path(where + (name,))}: not allowed inside a "
                            "component (components and steps belong to the top level)")
            continue
        if name not in O.SECTIONS:
            known = list(O.SECTIONS) + (["steps", "components"] if top else [])
            _warn(f"{format_path(where + (key,))}: unknown section {key!r} is ignored"
                  f"{_suggest(key, known)}; known sections: {', '.join(known)}")
            continue
        if val is None:
            out[name] = {}
            continue
        if not isinstance(val, dict):
            problems.append(f"{format_path(where + (name,))}: got {_value_repr(val)}; "
                            f"expected a mapping of {name} options")
            continue
        out[name] = _normalize_section(name, val, where + (name,), problems)
    return out


# ---------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------


def _parse_steps(raw, problems: list[str]) -> list[tuple[int, str, dict]]:
    """(position in the recipe's list, name, params) of each well-formed step."""
    if raw is None:
        return [(i, s, {}) for i, s in enumerate(O.DEFAULT_STEPS)]
    if not isinstance(raw, list):
        problems.append(f"steps: got {_value_repr(raw)}; expected a list of step names or "
                        "one-key mappings {step: parameters}")
        return []
    known = ", ".join(O.STEP_NAMES)
    out: list[tuple[int, str, dict]] = []
    for i, item in enumerate(raw):
        where = ("steps", i)
        if isinstance(item, str):
            name, params = item, None
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
        else:
            problems.append(f"{format_path(where)}: got {_value_repr(item)}; expected a step "
                            "name or a one-key mapping {step: parameters}")
            continue
        if name not in O.STEPS:
            problems.append(f"{format_path(where)}: unknown step {name!r}"
                            f"{_suggest(name, O.STEP_NAMES)}; known steps: {known}")
            continue
        spec = O.STEPS[name]
        if params is None:
            params = {}
        elif not isinstance(params, dict):
            if spec.positional and isinstance(params, str):
                params = {spec.positional: params}
            else:
                hint = (f"a mapping of parameters or a string (its {spec.positional})"
                        if spec.positional else "a mapping of parameters")
                problems.append(f"{format_path(where + (name,))}: got {_value_repr(params)}; "
                                f"expected {hint}")
                continue
        allowed = O.step_options(name)
        params = _normalize_section(spec.section or name, params, where + (name,), problems,
                                    allowed=allowed, what=f"step {name!r}")
        for sub in spec.sub_sections:
            if isinstance(params.get(sub), dict):
                params[sub] = _normalize_section(sub, params[sub], where + (name, sub),
                                                 problems)
        out.append((i, name, params))
    return out


# ---------------------------------------------------------------------------------------
# merging, coercion, defaults, derived options
# ---------------------------------------------------------------------------------------


def merge_config(base: Mapping, update: Mapping) -> dict:
    """Fermipy's merge: mappings merge key by key (recursively), anything else -- lists and
    ``None`` included -- replaces.  Returns a new dict; the inputs are not changed."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _coerce_item(schema: Mapping, x):
    t = schema.get("type") or []
    t = [t] if isinstance(t, str) else list(t)
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, int) and "number" in t:
        return float(x)
    if isinstance(x, float) and "integer" in t and "number" not in t and x.is_integer():
        return int(x)
    if isinstance(x, list) and "array" in t and isinstance(schema.get("items"), Mapping):
        return [_coerce_item(schema["items"], y) for y in x]
    return x


def _coerce(opt: O.Option, v):
    """Bring a validated value to its canonical Python form: ints given for numbers become
    floats, integral floats given for integers become ints, one string given for a list
    becomes a one-item list, YAML booleans given for roicut become 'yes'/'no'."""
    if v is None:
        return None
    if isinstance(v, bool):
        if opt.enum and "yes" in opt.enum:
            return "yes" if v else "no"
        return v
    types = opt.types
    if isinstance(v, int) and "number" in types:
        return float(v)
    if isinstance(v, float) and "integer" in types and "number" not in types \
            and v.is_integer():
        return int(v)
    if isinstance(v, str) and opt.listify:
        return [v]
    if isinstance(v, list) and opt.items:
        return [_coerce_item(opt.items, x) for x in v]
    return v


def _coerce_section(opts: Mapping[str, O.Option], body: Mapping) -> dict:
    return {k: _coerce(opts[k], v) if k in opts else v for k, v in body.items()}


def _fill_defaults(user: Mapping) -> dict:
    """Every section, every option: the user's value or the default (coerced)."""
    out: dict = {}
    for sec, opts in O.SECTIONS.items():
        given = user.get(sec) or {}
        body = {}
        for k, opt in opts.items():
            if opt.alias_of:
                continue
            v = given[k] if k in given else copy.deepcopy(opt.default)
            body[k] = _coerce(opt, v)
        out[sec] = body
    return out


_UNSET_VAR = re.compile(r"\$(\w+|\{[^}]*\})")


def _expand(value: str, where: str, base: Path, bare_names: bool) -> str:
    prefix = ""
    s = value
    if s.startswith("@"):
        prefix, s = "@", s[1:]
    s = os.path.expanduser(os.path.expandvars(s))
    m = _UNSET_VAR.search(s)
    if m:
        _warn(f"{where}: environment variable {m.group(0)} in {value!r} is not set; the path "
              "is left unexpanded")
    if not s or os.path.isabs(s):
        return prefix + os.path.normpath(s) if s else value
    cand = base / s
    if bare_names and os.sep not in s and "/" not in s and not cand.exists():
        return prefix + s
    return prefix + os.path.normpath(str(cand))


def _resolve_paths(cfg: dict, base: Path) -> None:
    for sec, opts in O.SECTIONS.items():
        for k, opt in opts.items():
            if not opt.path or k not in cfg[sec]:
                continue
            v = cfg[sec][k]
            where = f"{sec}.{k}"
            bare = opt.path == "name"
            if isinstance(v, str):
                cfg[sec][k] = _expand(v, where, base, bare)
            elif isinstance(v, list):
                cfg[sec][k] = [_expand(x, where, base, bare) if isinstance(x, str)
                               else _expand_file_entry(x, where, base, bare) for x in v]


def _expand_file_entry(x, where, base, bare):
    """A ``{name, file}`` mapping with its ``file`` expanded like a path option."""
    if isinstance(x, dict) and isinstance(x.get("file"), str):
        return dict(x, file=_expand(x["file"], where, base, bare))
    return x


def resolve_config(cfg: Mapping, *, base_dir: str | os.PathLike | None = None,
                   given: Mapping | None = None, environ: Mapping | None = None) -> dict:
    """Fill the derived options of a defaults-filled configuration (the ``derived`` column
    of the option table) and expand its paths.  Returns a new dict.

    ``given`` is the user's own (partial) configuration, used to tell an option the user set
    from one left at its default (only ``binning.roiwidth`` needs it).  ``base_dir`` is the
    folder relative paths are taken from (default: the current folder); ``environ``
    defaults to ``os.environ`` (read only).
    """
    env = os.environ if environ is None else environ
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    base = base.resolve()
    given = given or {}
    c = copy.deepcopy(dict(cfg))

    # --- fileio ---------------------------------------------------------------------
    fio = c["fileio"]
    if fio.get("outdir") is None:
        fio["outdir"] = str(base)
    _resolve_paths(c, base)
    if fio.get("workdir") is None:
        fio["workdir"] = fio["outdir"]
    if fio.get("cachedir") is None:
        fio["cachedir"] = os.path.join(fio["outdir"], ".store")

    # --- data.caldb -------------------------------------------------------------------
    data = c["data"]
    if data.get("caldb") is None and env.get("CALDB"):
        data["caldb"] = os.path.normpath(
            os.path.abspath(os.path.expanduser(os.path.expandvars(env["CALDB"]))))

    # --- binning ----------------------------------------------------------------------
    b = c["binning"]
    gb = given.get("binning") or {}
    if b.get("npix") is None:
        from ..geom.wcs import npix_for_width

        b["npix"] = npix_for_width(b["roiwidth"], b["binsz"])
    elif "roiwidth" not in gb:
        b["roiwidth"] = float(b["npix"] * b["binsz"])

    # --- selection --------------------------------------------------------------------
    s = c["selection"]
    for lin, log in (("emin", "logemin"), ("emax", "logemax")):
        if s.get(lin) is None and s.get(log) is not None:
            s[lin] = float(10.0 ** s[log])
        elif s.get(log) is None and s.get(lin) is not None:
            s[log] = float(math.log10(s[lin]))
    if s.get("evtype") is not None and isinstance(s["evtype"], list):
        mask = 0
        for t in s["evtype"]:
            mask |= int(t)
        s["evtype"] = mask
    if s.get("target"):
        _resolve_target(s, c.get("model") or {}, base)
    have_cel = s.get("ra") is not None and s.get("dec") is not None
    have_gal = s.get("glon") is not None and s.get("glat") is not None
    if have_cel != have_gal:
        from ..geom.frames import fermipy_cel_to_gal, fermipy_gal_to_cel

        if have_cel:
            s["glon"], s["glat"] = fermipy_cel_to_gal(s["ra"], s["dec"])
        else:
            s["ra"], s["dec"] = fermipy_gal_to_cel(s["glon"], s["glat"])
    if s.get("radius") is None:
        s["radius"] = float(math.sqrt(2.0) * 0.5 * b["npix"] * b["binsz"] + 0.5)
    if (b.get("enumbins") is None and s.get("emin") is not None
            and s.get("emax") is not None and s["emax"] > s["emin"]):
        b["enumbins"] = max(1, int(round(b["binsperdec"] * math.log10(s["emax"] / s["emin"]))))

    # --- ltcube -----------------------------------------------------------------------
    lt = c["ltcube"]
    if lt.get("zmax") is None:
        lt["zmax"] = float(s["zmax"]) if s.get("zmax") is not None else 180.0
    return c


def _resolve_target(s: dict, model: Mapping, base: Path) -> None:
    """``selection.target``: the ROI centre at the catalog source of that name or
    association (Fermipy: the target overrides ra/dec and glon/glat).  The position found
    becomes selection.ra/dec, so it is in every key that depends on the centre."""
    from ..geom.frames import fermipy_cel_to_gal
    from ..model.catalog import angular_separation, find_target

    try:
        m = find_target(s["target"], model.get("catalogs"), base=base)
    except ModelError as exc:
        raise RecipeError(str(exc)) from None
    except InputFileError as exc:          # the catalog itself is missing or unreadable
        raise InputFileError(f"selection.target {s['target']!r}: {exc}") from None
    for a, b in (("ra", "dec"), ("glon", "glat")):
        if s.get(a) is not None and s.get(b) is not None:
            lon, lat = (m.ra, m.dec) if a == "ra" else fermipy_cel_to_gal(m.ra, m.dec)
            d = float(angular_separation(float(lon), float(lat), float(s[a]), float(s[b])))
            if d > 0.01:
                _warn(f"selection.target {s['target']!r} ({m.name}) is {d:.2f} deg from the "
                      f"given selection.{a}/{b}; the target wins, as in Fermipy")
    s["ra"], s["dec"] = m.ra, m.dec
    s["glon"], s["glat"] = fermipy_cel_to_gal(m.ra, m.dec)


def _cross_checks(cfg: Mapping, where: tuple) -> list[str]:
    """Checks across options of a merged (not yet resolved) configuration."""
    out = []
    s = cfg.get("selection") or {}
    b = cfg.get("binning") or {}

    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    def p(*k):
        return format_path(where + k)

    for lo, hi in (("emin", "emax"), ("logemin", "logemax"), ("tmin", "tmax"),
                   ("phasemin", "phasemax")):
        if num(s.get(lo)) and num(s.get(hi)) and not s[lo] < s[hi]:
            out.append(f"{p('selection', lo)}: got {s[lo]!r} with {hi} {s[hi]!r}; expected "
                       f"{lo} < {hi}")
    for lin, log in (("emin", "logemin"), ("emax", "logemax")):
        if num(s.get(lin)) and num(s.get(log)) and s[lin] > 0:
            if abs(math.log10(s[lin]) - s[log]) > 1e-6:
                out.append(f"{p('selection', log)}: got {s[log]!r} but {lin} is {s[lin]!r} "
                           f"(log10 = {math.log10(s[lin]):.6g}); give one of them")
    for a, bb in (("ra", "dec"), ("glon", "glat")):
        if (s.get(a) is None) != (s.get(bb) is None):
            missing = bb if s.get(bb) is None else a
            out.append(f"{p('selection', missing)}: required with "
                       f"{a if missing == bb else bb}; give both {a} and {bb}")
    if num(b.get("npix")) and "roiwidth" in b and num(b.get("roiwidth")) and num(
            b.get("binsz")):
        w = b["npix"] * b["binsz"]
        if abs(w - b["roiwidth"]) > b["binsz"] * (1 + 1e-9):
            _warn(f"{p('binning')}: npix {b['npix']} x binsz {b['binsz']} = {w:g} deg differs "
                  f"from roiwidth {b['roiwidth']}; npix wins")
    e = cfg.get("extension") or {}
    if num(e.get("width_min")) and num(e.get("width_max")) and not e["width_min"] < e[
            "width_max"]:
        out.append(f"{p('extension', 'width_min')}: got {e['width_min']!r} with width_max "
                   f"{e['width_max']!r}; expected width_min < width_max")
    return out


# ---------------------------------------------------------------------------------------
# options without effect, values not implemented, non-finite numbers
# ---------------------------------------------------------------------------------------


def _given_sections(user: Mapping, comps: list, steps: list):
    """(key path, section name, mapping) of every section body the user gave: top level,
    components, and the section options given as step parameters."""
    for sec, body in user.items():
        yield (sec,), sec, body
    for i, comp in enumerate(comps):
        for sec, body in comp.items():
            yield ("components", i, sec), sec, body
    for i, (name, params) in enumerate(steps):
        spec = O.STEPS[name]
        if spec.section:
            yield (("steps", i, name), spec.section,
                   {k: v for k, v in params.items() if k in O.SECTIONS[spec.section]})
        for sub in spec.sub_sections:
            if isinstance(params.get(sub), Mapping):
                yield ("steps", i, name, sub), sub, params[sub]


def _is_default(opt: O.Option, value) -> bool:
    return _coerce(opt, copy.deepcopy(opt.default)) == value


def _not_implemented(user: Mapping, comps: list, steps: list) -> list[str]:
    out = []
    for where, sec, body in _given_sections(user, comps, steps):
        for key, value in body.items():
            opt = O.SECTIONS[sec].get(key)
            if opt is None or not opt.not_implemented or _is_default(opt, value):
                continue
            out.append(f"{format_path(where + (key,))}: got {_value_repr(value)}; not "
                       f"implemented: {opt.not_implemented} (leave it at "
                       f"{_value_repr(_coerce(opt, opt.default))})")
    return out


def _warn_without_effect(user: Mapping, comps: list, steps: list, derived: Mapping) -> None:
    """Warn for every option marked no_effect that the user set to another value than its
    default (for a derived option: than the value fermixr derives, ``derived[(sec, key)]``
    of the top level)."""
    for where, sec, body in _given_sections(user, comps, steps):
        for key, value in body.items():
            opt = O.SECTIONS[sec].get(key)
            if opt is None or not opt.no_effect or _is_default(opt, value):
                continue
            if opt.derived and derived.get((sec, key)) == value:
                continue
            _warn(f"{format_path(where + (key,))}: set to {_value_repr(value)}, accepted "
                  f"without effect: {opt.no_effect}", OptionWithoutEffectWarning)


def _non_finite(data, where: tuple) -> list[str]:
    """Key paths of NaN and infinite numbers anywhere in the recipe data (JSON Schema
    cannot refuse them: NaN passes every bound)."""
    out: list[str] = []
    if isinstance(data, float) and not math.isfinite(data):
        out.append(f"{format_path(where)}: got {data!r}; expected a finite number")
    elif isinstance(data, Mapping):
        for k, v in data.items():
            out += _non_finite(v, where + (k,))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            out += _non_finite(v, where + (i,))
    return out


# ---------------------------------------------------------------------------------------
# the Recipe
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=True)
class Recipe:
    """A validated, resolved recipe.

    ``config``: the resolved top-level configuration (every section, every option, derived
    options filled, paths absolute) plus ``components`` (the component configurations as
    given, or None);
    ``steps``: list of ``(name, params)`` with the parameters as given (validated and
    normalised; section defaults are not copied in -- see :meth:`step_options`);
    ``components``: one resolved configuration per component (the top level alone when
    there are none);
    ``path``: the recipe file, or None.
    """

    config: dict
    steps: list
    components: list
    path: Path | None = None

    def section(self, name: str) -> dict:
        """A copy of one resolved top-level section."""
        if name in O.SECTION_ALIASES:
            name = O.SECTION_ALIASES[name]
        if name not in O.SECTIONS:
            raise RecipeError(f"no section {name!r}; sections: {', '.join(O.SECTIONS)}")
        return copy.deepcopy(self.config[name])

    def step_options(self, index: int, component: int | None = None) -> dict:
        """The full parameters of step ``index``: its section (of the top level, or of
        ``component``) with the step's own parameters merged over it, the step's extra
        parameters at their defaults where not given, and Fermipy's default test source
        (PowerLaw point source, Index 2) under ``model`` for tsmap/tscube/residmap/
        find_sources."""
        name, params = self.steps[index]
        spec = O.STEPS[name]
        cfg = self.config if component is None else self.components[component]
        out: dict = {}
        if spec.section:
            out.update(copy.deepcopy(cfg[spec.section]))
        for k, opt in spec.extras.items():
            if k in spec.sub_sections:
                out[k] = copy.deepcopy(cfg[k])
            else:
                out[k] = _coerce(opt, copy.deepcopy(opt.default))
        for k, v in params.items():
            if k in spec.sub_sections and isinstance(v, dict):
                out[k] = merge_config(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        if spec.test_source:
            model = dict(O.TEST_SOURCE_DEFAULTS)
            model.update(out.get("model") or {})
            out["model"] = model
        return out

    @functools.cached_property
    def options(self) -> tuple:
        """The resolved options of each component (:class:`fermixr.engine.resolved.Resolved`:
        ``rec.options[0].selection.zmax``), in the order of :attr:`components`."""
        from .resolved import resolve

        return tuple(resolve(c) for c in self.components)

    def step_section(self, index: int, component: int = 0):
        """The section object of step ``index`` (e.g. ``fit`` -> the ``optimizer`` section,
        ``optimize`` -> ``roiopt``) of ``component``, with the step's own parameters for
        that section merged over it; None for a step without a section.  The step's extra
        parameters are in :meth:`step_options`."""
        name, params = self.steps[index]
        spec = O.STEPS[name]
        if not spec.section:
            return None
        base = getattr(self.options[component], spec.section)
        mine = {k: v for k, v in params.items() if k in O.SECTIONS[spec.section]}
        return base.replace(**mine) if mine else base

    def to_dict(self) -> dict:
        """The resolved recipe as plain data.  Components appear fully resolved, so that
        loading the result gives the same recipe."""
        d = {k: copy.deepcopy(v) for k, v in self.config.items() if k != "components"}
        given = self.config.get("components")
        d["components"] = copy.deepcopy(self.components) if given else None
        d["steps"] = [n if not p else {n: copy.deepcopy(p)} for n, p in self.steps]
        return d

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False,
                         default_flow_style=False, width=100)


# ---------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------


def _raise(problems: list[str], origin: str):
    n = len(problems)
    err = RecipeError(f"{origin}: {n} problem{'s' if n > 1 else ''}:\n  "
                      + "\n  ".join(problems))
    err.problems = list(problems)
    raise err


def validate_recipe(data: Mapping, *, origin: str = "recipe") -> tuple[dict, list, list]:
    """Normalise and validate raw recipe data.  Returns ``(user_config, steps,
    components)`` with aliases renamed, unknown keys dropped (after warning) and values
    coerced; raises :class:`RecipeError` listing every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        _raise([f"<recipe>: got {type(data).__name__}; expected a mapping of sections"],
               origin)
    nonfinite = _non_finite(dict(data), ())
    user = _normalize_config(dict(data), (), problems, top=True)
    raw_steps = user.pop("steps", None)
    raw_comps = user.pop("components", None)

    for sec, body in user.items():
        problems += _validate_against(f"section_{sec}", body, (sec,))
    problems += _cross_checks(user, ())

    comps: list[dict] = []
    if raw_comps is not None:
        if not isinstance(raw_comps, list):
            problems.append(f"components: got {_value_repr(raw_comps)}; expected a list of "
                            "partial configurations (one per component)")
        else:
            for i, item in enumerate(raw_comps):
                where = ("components", i)
                if item is None:
                    item = {}
                if not isinstance(item, dict):
                    problems.append(f"{format_path(where)}: got {_value_repr(item)}; expected "
                                    "a mapping of sections")
                    continue
                comp = _normalize_config(item, where, problems, top=False)
                for sec, body in comp.items():
                    problems += _validate_against(f"section_{sec}", body, where + (sec,))
                problems += _cross_checks(merge_config(user, comp), where)
                comps.append(comp)

    step_problems: list[str] = []
    steps = _parse_steps(raw_steps, step_problems)
    for i, name, params in steps:
        step_problems += _validate_against(f"step_{name}", params, ("steps", i, name))
    # report step problems in the order of the steps
    problems += sorted(step_problems, key=lambda m: int(re.match(r"steps\[(\d+)\]", m).group(1))
                       if m.startswith("steps[") else -1)

    if nonfinite:
        # a NaN also fails the bounds of its option: say it once, as "finite"
        bad = {m.split(":", 1)[0] for m in nonfinite}
        problems = nonfinite + [m for m in problems if m.split(":", 1)[0] not in bad]
    if problems:
        _raise(problems, origin)

    user = {sec: _coerce_section(O.SECTIONS[sec], body) for sec, body in user.items()}
    comps = [{sec: _coerce_section(O.SECTIONS[sec], body) for sec, body in c.items()}
             for c in comps]
    norm_steps = []
    for _i, name, params in steps:
        opts = O.step_options(name)
        p = _coerce_section(opts, params)
        for sub in O.STEPS[name].sub_sections:
            if isinstance(p.get(sub), dict):
                p[sub] = _coerce_section(O.SECTIONS[sub], p[sub])
        norm_steps.append((name, p))
    refused = _not_implemented(user, comps, norm_steps)
    if refused:
        _raise(refused, origin)
    return user, norm_steps, comps


def load_recipe(source, *, check_files: bool = False, **overrides) -> Recipe:
    """Load, validate and resolve a recipe.

    ``source``: a YAML file path, YAML text, a dict, or a :class:`Recipe`.
    ``overrides``: sections (or ``steps``/``components``) merged over the source as Fermipy
    merges keyword arguments: ``load_recipe('config.yaml', selection={'emax': 10000})``.
    ``check_files``: also check that data.evfile/scfile/ltcube and data.caldb exist.

    Raises :class:`RecipeError` (every problem at once, each naming the key path, the value
    and what was expected) or :class:`InputFileError` (the recipe file is missing).
    """
    data, path = _read_source(source)
    origin = str(path) if path else "recipe"
    if overrides:
        problems: list[str] = []
        ov = _normalize_config(_plain(overrides), (), problems, top=True)
        base = _normalize_config(dict(data), (), problems, top=True)
        if problems:
            _raise(problems, origin)
        data = merge_config(base, ov)
        for k in ("steps", "components"):   # lists replace
            if k in ov:
                data[k] = copy.deepcopy(ov[k])
    user, steps, comps = validate_recipe(data, origin=origin)

    base_dir = path.parent if path else Path.cwd()
    top = resolve_config(_fill_defaults(user), base_dir=base_dir, given=user)
    _warn_without_effect(user, comps, steps, _derived_values(user, base_dir))
    resolved_comps = []
    for comp in comps:
        merged = merge_config(user, comp)
        resolved_comps.append(resolve_config(_fill_defaults(merged), base_dir=base_dir,
                                             given=merged))
    if not resolved_comps:
        resolved_comps = [copy.deepcopy(top)]
    config = dict(top)
    config["components"] = copy.deepcopy(comps) if comps else None
    rec = Recipe(config=config, steps=steps, components=resolved_comps, path=path)
    if check_files:
        missing = _check_files(rec)
        if missing:
            err = InputFileError(f"{origin}: {len(missing)} input file problem(s):\n  "
                                 + "\n  ".join(missing))
            err.problems = missing
            raise err
    return rec


def _derived_values(user: Mapping, base_dir) -> dict:
    """What fermixr derives for the derived options marked no_effect that the user gave
    (the value they get when absent), so that a resolved recipe loaded again (which holds
    them) does not warn."""
    out = {}
    for sec, body in user.items():
        for key in body:
            opt = O.SECTIONS[sec].get(key)
            if opt is not None and opt.no_effect and opt.derived:
                less = {s: {k: v for k, v in b.items() if (s, k) != (sec, key)}
                        for s, b in user.items()}
                cfg = resolve_config(_fill_defaults(less), base_dir=base_dir, given=less)
                out[(sec, key)] = cfg[sec][key]
    return out


def _check_files(rec: Recipe) -> list[str]:
    from ..io.filelist import resolve_files

    out: list[str] = []
    for i, cfg in enumerate(rec.components):
        where = f"components[{i}]." if len(rec.components) > 1 else ""
        for key in ("evfile", "scfile", "ltcube"):
            spec = cfg["data"].get(key)
            if spec is None:
                continue
            try:
                resolve_files(spec, what=f"{where}data.{key}")
            except InputFileError as exc:
                if str(exc) not in out:
                    out.append(str(exc))
        caldb = cfg["data"].get("caldb")
        if caldb and not os.path.isdir(caldb):
            msg = f"{where}data.caldb: folder {caldb!r} does not exist"
            if msg not in out:
                out.append(msg)
    return out


def validate_file(path, *, check_files: bool = True, include_warnings: bool = False
                  ) -> list[str]:
    """Problems of a recipe file as a list of strings (empty when it is valid), for
    ``fermixr validate``, one line each naming the key path or the file.  With
    ``check_files``, every check that needs no computation
    (:func:`fermixr.engine.preflight.check_recipe`): data and model files exist and parse,
    IRFs resolve, steps are available, sizes fit in memory, the selection lies within the
    event file's cuts and the FT2 covers the GTIs.  With ``include_warnings`` the warnings
    (unknown keys, old spellings, data disagreements, sizes above half the memory) are
    included, prefixed ``warning:``."""
    out: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rec = load_recipe(path)
        except (RecipeError, InputFileError) as exc:
            out.extend(getattr(exc, "problems", None) or [str(exc)])
        else:
            if check_files:
                from .preflight import check_recipe

                missing = _check_files(rec)
                out.extend(missing)
                found = check_recipe(rec)
                # a missing file is said once (check_recipe names it too)
                out.extend(m for m in found if not any(_same_file_problem(m, x)
                                                       for x in missing))
    if include_warnings:
        from .preflight import DataWarning

        out.extend(f"warning: {w.message}" for w in caught
                   if issubclass(w.category, (RecipeWarning, RecipeDeprecationWarning,
                                              DataWarning)))
    return out


def _same_file_problem(a: str, b: str) -> bool:
    """Two lines about the same missing file."""
    qa = re.findall(r"'([^']+)'", a)
    return bool(qa) and "does not exist" in a and any(q in b for q in qa)
