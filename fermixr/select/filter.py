"""A small, safe parser for gtmktime/CFITSIO row-filter expressions (never ``eval``).

Supported, as CFITSIO spells them (case-insensitive names):

* logical ``||`` ``&&`` ``!`` (also ``.or.`` ``.and.`` ``.not.``);
* comparisons ``==`` ``=`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` (also ``.eq.`` ``.ne.`` ``.lt.``
  ``.le.`` ``.gt.`` ``.ge.``);
* arithmetic ``+ - * / %`` and power ``**`` / ``^``, unary ``-``/``+``; bitwise ``&``/``|``
  on integers (``(EVENT_CLASS&o200) != o0`` as gtselect writes it);
* numbers: ``12``, ``1.5``, ``.5``, ``1e-3``, ``1D3``; octal ``o200``, hex ``h80``,
  binary ``b101`` integers; booleans ``T``/``F``/``TRUE``/``FALSE``;
* functions ``abs sqrt exp log log10 sin cos tan asin acos atan atan2 (arc... spellings)
  min max floor ceil round`` (trigonometry in radians, as CFITSIO) and
  ``angsep(lon1, lat1, lon2, lat2)`` in degrees (CFITSIO's haversine);
  ``gtifilter()`` is true inside the GTIs handed to :meth:`FilterExpression.evaluate`.

Precedence follows CFITSIO: ``||`` < ``&&`` < equality < relational < ``+ - %`` <
``* /`` < ``& |`` < unary < power.  Column names are matched without regard to case;
an unknown name raises :class:`FilterSyntaxError` naming it and the available columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import FilterSyntaxError

# --- tokens ----------------------------------------------------------------------------
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eEdD][+-]?\d+)?)
  | (?P<dotop>\.(?:and|or|not|eq|ne|lt|le|gt|ge)\.)
  | (?P<op>\|\||&&|==|!=|<=|>=|\*\*|[<>=!+\-*/%^&|(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_DOTOPS = {".and.": "&&", ".or.": "||", ".not.": "!", ".eq.": "==", ".ne.": "!=",
           ".lt.": "<", ".le.": "<=", ".gt.": ">", ".ge.": ">="}


@dataclass(frozen=True)
class Token:
    kind: str  # num, name, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Tokens of a filter expression; :class:`FilterSyntaxError` names the position of
    the first character that starts no token."""
    if not isinstance(text, str):
        raise FilterSyntaxError(f"filter must be a string, got {type(text).__name__}")
    toks = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FilterSyntaxError(_where(text, pos, f"unexpected character {text[pos]!r}"))
        kind = m.lastgroup
        s = m.group(kind)
        if kind == "dotop":
            toks.append(Token("op", _DOTOPS[s.lower()], pos))
        elif kind == "op":
            toks.append(Token("op", "==" if s == "=" else ("**" if s == "^" else s), pos))
        elif kind in ("num", "name"):
            toks.append(Token(kind, s, pos))
        pos = m.end()
    toks.append(Token("end", "", n))
    return toks


def _where(text: str, pos: int, msg: str) -> str:
    return f"filter {text!r}: {msg} at position {pos}\n  {text}\n  {' ' * pos}^"


# --- literals ----------------------------------------------------------------------------
_BOOL_LIT = {"T": True, "TRUE": True, "F": False, "FALSE": False}
_RADIX_RE = re.compile(r"^(?:([oO])([0-7]+)|([hH])([0-9A-Fa-f]+)|([bB])([01]+))$")


def _literal_value(name: str):
    """Value of a name that is a literal (T/F, o17, h1F, b101), else None."""
    up = name.upper()
    if up in _BOOL_LIT:
        return np.bool_(_BOOL_LIT[up])
    m = _RADIX_RE.match(name)
    if m:
        if m.group(2) is not None:
            return int(m.group(2), 8)
        if m.group(4) is not None:
            return int(m.group(4), 16)
        return int(m.group(6), 2)
    return None


# --- functions -----------------------------------------------------------------------
def _angsep(lon1, lat1, lon2, lat2):
    d = np.pi / 180.0
    lon1, lat1, lon2, lat2 = (np.asarray(v, dtype=np.float64) for v in (lon1, lat1, lon2, lat2))
    sra = np.sin((lon2 - lon1) * d / 2.0)
    sdec = np.sin((lat2 - lat1) * d / 2.0)
    a = np.clip(sdec * sdec + np.cos(lat1 * d) * np.cos(lat2 * d) * sra * sra, 0.0, 1.0)
    return 2.0 * np.arctan2(np.sqrt(a), np.sqrt(1.0 - a)) / d


_FUNCS = {
    "ABS": (1, np.abs), "SQRT": (1, np.sqrt), "EXP": (1, np.exp), "LOG": (1, np.log),
    "LOG10": (1, np.log10), "SIN": (1, np.sin), "COS": (1, np.cos), "TAN": (1, np.tan),
    "ASIN": (1, np.arcsin), "ARCSIN": (1, np.arcsin), "ACOS": (1, np.arccos),
    "ARCCOS": (1, np.arccos), "ATAN": (1, np.arctan), "ARCTAN": (1, np.arctan),
    "ATAN2": (2, np.arctan2), "ARCTAN2": (2, np.arctan2), "MIN": (2, np.minimum),
    "MAX": (2, np.maximum), "FLOOR": (1, np.floor), "CEIL": (1, np.ceil),
    "ROUND": (1, lambda x: np.floor(np.asarray(x, dtype=np.float64) + 0.5)),
    "ANGSEP": (4, _angsep),
}


# --- parser ----------------------------------------------------------------------------
class _Parser:
    _LEVELS = [
        ("||",),
        ("&&",),
        ("==", "!="),
        ("<", "<=", ">", ">="),
        ("+", "-", "%"),
        ("*", "/"),
        ("&", "|"),
    ]

    def __init__(self, text):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, tok: Token, expected: str):
        what = "end of expression" if tok.kind == "end" else f"token {tok.text!r}"
        raise FilterSyntaxError(_where(self.text, tok.pos, f"unexpected {what} (expected {expected})"))

    def parse(self):
        if self.peek().kind == "end":
            raise FilterSyntaxError(f"filter {self.text!r}: empty expression")
        node = self.binary(0)
        tok = self.peek()
        if tok.kind != "end":
            self.fail(tok, "an operator or the end of the expression")
        return node

    def binary(self, level):
        if level == len(self._LEVELS):
            return self.unary()
        ops = self._LEVELS[level]
        left = self.binary(level + 1)
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text in ops:
                self.take()
                right = self.binary(level + 1)
                left = ("bin", tok.text, left, right, tok.pos)
            else:
                return left

    def unary(self):
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("!", "-", "+"):
            self.take()
            return ("un", tok.text, self.unary(), tok.pos)
        return self.power()

    def power(self):
        base = self.primary()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "**":
            self.take()
            return ("bin", "**", base, self.unary(), tok.pos)
        return base

    def primary(self):
        tok = self.take()
        if tok.kind == "num":
            s = tok.text.replace("d", "e").replace("D", "e")
            if re.fullmatch(r"\d+", s):
                return ("num", int(s), tok.pos)
            return ("num", float(s), tok.pos)
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                return self.call(tok)
            return ("id", tok.text, tok.pos)
        if tok.kind == "op" and tok.text == "(":
            node = self.binary(0)
            close = self.take()
            if not (close.kind == "op" and close.text == ")"):
                self.fail(close, "')'")
            return node
        self.fail(tok, "a number, a column name, a function or '('")

    def call(self, name_tok):
        fname = name_tok.text.upper()
        self.take()  # (
        args = []
        if not (self.peek().kind == "op" and self.peek().text == ")"):
            while True:
                args.append(self.binary(0))
                t = self.peek()
                if t.kind == "op" and t.text == ",":
                    self.take()
                    continue
                break
        close = self.take()
        if not (close.kind == "op" and close.text == ")"):
            self.fail(close, "',' or ')'")
        if fname == "GTIFILTER":
            return ("gti", args, name_tok.pos)
        if fname not in _FUNCS:
            raise FilterSyntaxError(_where(
                self.text, name_tok.pos,
                f"unknown function {name_tok.text!r} (known: {', '.join(sorted(_FUNCS))}, GTIFILTER)"))
        nargs = _FUNCS[fname][0]
        if len(args) != nargs:
            raise FilterSyntaxError(_where(
                self.text, name_tok.pos,
                f"function {name_tok.text!r} takes {nargs} argument(s), got {len(args)}"))
        return ("call", fname, args, name_tok.pos)


# --- evaluation --------------------------------------------------------------------------
class FilterExpression:
    """A parsed filter.  ``columns`` lists the column names it reads (upper case)."""

    def __init__(self, text: str):
        self.text = text
        self._ast = _Parser(text).parse()
        names: list[str] = []
        self._collect(self._ast, names)
        self.columns = tuple(dict.fromkeys(names))

    def _collect(self, node, out):
        kind = node[0]
        if kind == "id":
            if _literal_value(node[1]) is None:
                out.append(node[1].upper())
        elif kind == "un":
            self._collect(node[2], out)
        elif kind == "bin":
            self._collect(node[2], out)
            self._collect(node[3], out)
        elif kind == "call":
            for a in node[2]:
                self._collect(a, out)
        elif kind == "gti":
            if node[1]:
                for a in node[1]:
                    self._collect(a, out)
            else:
                out.append("TIME")

    def evaluate(self, table, *, gti=None, nrows=None) -> np.ndarray:
        """Boolean mask over the rows of ``table`` (a mapping of column name -> 1-D array;
        e.g. FT2 columns).  ``gti``: (start, stop) arrays for ``gtifilter()``."""
        cols = {str(k).upper(): k for k in table.keys()}
        if nrows is None:
            lengths = {len(np.asarray(table[k])) for k in table.keys()}
            if len(lengths) > 1:
                raise FilterSyntaxError(f"filter {self.text!r}: table columns differ in length {sorted(lengths)}")
            nrows = lengths.pop() if lengths else 1
        ctx = _Ctx(self.text, table, cols, gti)
        val = ctx.eval(self._ast)
        arr = np.asarray(val)
        if arr.dtype != np.bool_:
            raise FilterSyntaxError(
                f"filter {self.text!r}: the expression is not a condition (it gives "
                f"{arr.dtype} values); compare with a value, e.g. 'X > 0'"
            )
        return np.broadcast_to(arr, (nrows,)).copy() if arr.ndim == 0 else arr.reshape(-1).copy()

    def __repr__(self):
        return f"FilterExpression({self.text!r})"


class _Ctx:
    def __init__(self, text, table, cols, gti):
        self.text, self.table, self.cols, self.gti = text, table, cols, gti

    def err(self, pos, msg):
        return FilterSyntaxError(_where(self.text, pos, msg))

    def eval(self, node):
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "id":
            name, pos = node[1], node[2]
            key = self.cols.get(name.upper())
            if key is not None:
                return np.asarray(self.table[key])
            lit = _literal_value(name)
            if lit is not None:
                return lit
            raise self.err(pos, f"unknown column {name!r}; available columns: "
                                f"{', '.join(sorted(self.cols)) or '(none)'}")
        if kind == "un":
            op, val = node[1], self.eval(node[2])
            if op == "!":
                return np.logical_not(self._bool(val, node[3], "!"))
            if op == "-":
                return np.negative(self._num(val, node[3], "-"))
            return self._num(val, node[3], "+")
        if kind == "bin":
            return self._binop(node[1], self.eval(node[2]), self.eval(node[3]), node[4])
        if kind == "call":
            args = [self._num(self.eval(a), node[3], node[1]) for a in node[2]]
            with np.errstate(all="ignore"):
                return _FUNCS[node[1]][1](*args)
        if kind == "gti":
            return self._gtifilter(node)
        raise AssertionError(kind)  # pragma: no cover

    def _bool(self, v, pos, op):
        a = np.asarray(v)
        if a.dtype != np.bool_:
            raise self.err(pos, f"operator {op!r} needs a condition, got {a.dtype} values")
        return a

    def _num(self, v, pos, op):
        a = np.asarray(v)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
            raise self.err(pos, f"operator/function {op!r} needs numbers, got {a.dtype} values")
        return a

    def _binop(self, op, a, b, pos):
        if op in ("||", "&&"):
            a, b = self._bool(a, pos, op), self._bool(b, pos, op)
            return np.logical_or(a, b) if op == "||" else np.logical_and(a, b)
        aa, bb = np.asarray(a), np.asarray(b)
        if op in ("==", "!="):
            if (aa.dtype == np.bool_) != (bb.dtype == np.bool_):
                raise self.err(pos, f"operator {op!r} compares a condition with a number")
            return np.equal(aa, bb) if op == "==" else np.not_equal(aa, bb)
        aa, bb = self._num(aa, pos, op), self._num(bb, pos, op)
        if op in ("&", "|"):
            if not (np.issubdtype(aa.dtype, np.integer) and np.issubdtype(bb.dtype, np.integer)):
                raise self.err(pos, f"bitwise {op!r} needs integers, got {aa.dtype} and {bb.dtype}")
            aa, bb = aa.astype(np.int64), bb.astype(np.int64)
            return np.bitwise_and(aa, bb) if op == "&" else np.bitwise_or(aa, bb)
        with np.errstate(all="ignore"):
            if op == "<":
                return aa < bb
            if op == "<=":
                return aa <= bb
            if op == ">":
                return aa > bb
            if op == ">=":
                return aa >= bb
            if op == "+":
                return aa + bb
            if op == "-":
                return aa - bb
            if op == "*":
                return aa * bb
            both_int = np.issubdtype(aa.dtype, np.integer) and np.issubdtype(bb.dtype, np.integer)
            if op == "/":
                if both_int:  # C semantics: truncate toward zero
                    return np.trunc(aa / bb).astype(np.int64)
                return aa / bb
            if op == "%":
                if both_int:
                    return np.fmod(aa, bb)
                return aa - bb * np.trunc(aa / bb)
            if op == "**":
                return np.power(aa.astype(np.float64), bb)
        raise AssertionError(op)  # pragma: no cover

    def _gtifilter(self, node):
        args, pos = node[1], node[2]
        if self.gti is None:
            raise self.err(pos, "gtifilter() needs GTIs: pass gti=(start, stop) to evaluate()")
        if len(args) > 1:
            raise self.err(pos, "gtifilter() takes at most one argument (the time column)")
        if args:
            t = self._num(self.eval(args[0]), pos, "gtifilter")
        else:
            key = self.cols.get("TIME")
            if key is None:
                raise self.err(pos, "gtifilter() needs a TIME column")
            t = np.asarray(self.table[key])
        start = np.asarray(self.gti[0], dtype=np.float64)
        stop = np.asarray(self.gti[1], dtype=np.float64)
        return in_intervals(np.asarray(t, dtype=np.float64), start, stop)


def in_intervals(t, start, stop) -> np.ndarray:
    """True where ``start[k] <= t <= stop[k]`` for some k (sorted, disjoint intervals;
    CFITSIO's gtifilter closes both ends)."""
    t = np.asarray(t, dtype=np.float64)
    if start.size == 0:
        return np.zeros(t.shape, dtype=bool)
    k = np.searchsorted(start, t, side="right") - 1
    kc = np.clip(k, 0, start.size - 1)
    return (k >= 0) & (t <= stop[kc])


# --- convenience ---------------------------------------------------------------------------
def parse_filter(text: str) -> FilterExpression:
    """Parse ``text``; raises :class:`FilterSyntaxError` naming position and token."""
    return FilterExpression(text)


def evaluate_filter(text: str, table, *, gti=None) -> np.ndarray:
    """Parse and evaluate a filter on a mapping of column arrays -> boolean mask."""
    return FilterExpression(text).evaluate(table, gti=gti)


def filter_columns(text: str) -> list[str]:
    """Column names (upper case) a filter reads, e.g. to choose which FT2 columns to load."""
    return list(FilterExpression(text).columns)
