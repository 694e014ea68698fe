"""gtmktime/CFITSIO filter expressions: values and error messages."""

from __future__ import annotations

import numpy as np
import pytest

from fermixr.errors import FilterSyntaxError
from fermixr.select.filter import evaluate_filter, filter_columns, parse_filter, tokenize

FT2 = {
    "DATA_QUAL": np.array([1, 0, 1, 1, 1, -1]),
    "LAT_CONFIG": np.array([1, 1, 0, 1, 1, 1]),
    "ROCK_ANGLE": np.array([10.0, -60.0, 0.0, -51.9, 52.0, 30.0]),
    "IN_SAA": np.array([False, False, True, False, False, True]),
    "RA_ZENITH": np.array([83.6, 100.0, 200.0, 83.6, 263.6, 90.0]),
    "DEC_ZENITH": np.array([22.0, 22.0, -10.0, -60.0, -22.0, 22.0]),
    "LIVETIME": np.array([25.0, 0.0, 28.0, 27.5, 26.0, 10.0]),
    "START": np.arange(6) * 30.0,
}


@pytest.mark.parametrize("expr, expected", [
    ("DATA_QUAL>0 && LAT_CONFIG==1", [1, 0, 0, 1, 1, 0]),
    ("(DATA_QUAL>0)&&(LAT_CONFIG==1)&&ABS(ROCK_ANGLE)<52", [1, 0, 0, 1, 0, 0]),
    ("data_qual > 0 .and. lat_config .eq. 1", [1, 0, 0, 1, 1, 0]),
    ("DATA_QUAL>0 || LAT_CONFIG==0", [1, 0, 1, 1, 1, 0]),
    ("!(DATA_QUAL>0)", [0, 1, 0, 0, 0, 1]),
    ("IN_SAA!=T && LIVETIME>0", [1, 0, 0, 1, 1, 0]),
    ("IN_SAA==F", [1, 1, 0, 1, 1, 0]),
    ("DATA_QUAL = 1", [1, 0, 1, 1, 1, 0]),
    ("(DATA_QUAL>0 || DATA_QUAL==-1) && LAT_CONFIG==1", [1, 0, 0, 1, 1, 1]),
    ("LIVETIME/30 >= 0.9", [0, 0, 1, 1, 0, 0]),
    ("LIVETIME*2 - 50 > 0 ", [0, 0, 1, 1, 1, 0]),
    ("LIVETIME**2 > 700", [0, 0, 1, 1, 0, 0]),
    ("2^3 == 8", [1, 1, 1, 1, 1, 1]),
    ("-ROCK_ANGLE > 50", [0, 1, 0, 1, 0, 0]),
    ("1e1 < LIVETIME && LIVETIME <= 2.6D1", [1, 0, 0, 0, 1, 0]),
    ("angsep(RA_ZENITH,DEC_ZENITH,83.6331,22.0145)+15<90", [1, 1, 0, 0, 0, 1]),
    ("ANGSEP(RA_ZENITH,DEC_ZENITH,83.6331,22.0145) < 0.1", [1, 0, 0, 0, 0, 0]),
    ("(DATA_QUAL & b11) != 0", [1, 0, 1, 1, 1, 1]),
    ("(LAT_CONFIG | h2) == 3", [1, 1, 0, 1, 1, 1]),
    ("DATA_QUAL % 2 == 1", [1, 0, 1, 1, 1, 0]),
    ("max(ROCK_ANGLE, 0) > 5", [1, 0, 0, 0, 1, 1]),
    ("sqrt(LIVETIME) >= 5", [1, 0, 1, 1, 1, 0]),
    ("cos(0) == 1 && DATA_QUAL > 0", [1, 0, 1, 1, 1, 0]),
    ("1 + 2 * 3 == 7 && (1 + 2) * 3 == 9", [1, 1, 1, 1, 1, 1]),
    ("DATA_QUAL > 0 && LAT_CONFIG == 1 || IN_SAA", [1, 0, 1, 1, 1, 1]),
])
def test_expressions_against_hand_results(expr, expected):
    got = evaluate_filter(expr, FT2)
    assert got.dtype == bool
    assert got.astype(int).tolist() == expected


def test_precedence_and_integer_division():
    t = {"X": np.array([7, -7])}
    assert evaluate_filter("X / 2 == 3 || X / 2 == -3", t).tolist() == [True, True]
    assert evaluate_filter("-2**2 == -4", t).tolist() == [True, True]
    assert evaluate_filter("X & 4 + 1 == 12", {"X": np.array([12])}).tolist() == [False]  # & binds tighter than +
    assert evaluate_filter("(X & 4) + 1 == 5", {"X": np.array([12])}).tolist() == [True]


def test_gtifilter_closed_intervals():
    t = {"TIME": np.array([0.0, 10.0, 15.0, 20.0, 21.0])}
    got = evaluate_filter("gtifilter()", t, gti=(np.array([10.0]), np.array([20.0])))
    assert got.tolist() == [False, True, True, True, False]


@pytest.mark.parametrize("expr, pos, token", [
    ("DATA_QUAL >", 11, "end of expression"),
    ("DATA_QUAL > 0 &&& 1", 16, "'&'"),
    ("(DATA_QUAL>0", 12, "end of expression"),
    ("DATA_QUAL>0)", 11, "')'"),
    ("DATA_QUAL # 1", 10, "'#'"),
    ("DATA_QUAL > > 1", 12, "'>'"),
    ("abs(ROCK_ANGLE, 1) < 2", 0, "takes 1 argument"),
    ("foo(ROCK_ANGLE) < 2", 0, "unknown function 'foo'"),
])
def test_syntax_errors_name_position_and_token(expr, pos, token):
    with pytest.raises(FilterSyntaxError) as info:
        evaluate_filter(expr, FT2)
    msg = str(info.value)
    assert f"at position {pos}" in msg and token in msg


def test_unknown_column_lists_available():
    with pytest.raises(FilterSyntaxError, match=r"unknown column 'DATAQUAL'; available columns: DATA_QUAL, DEC_ZENITH"):
        evaluate_filter("DATAQUAL > 0", FT2)


def test_type_errors():
    with pytest.raises(FilterSyntaxError, match="not a condition"):
        evaluate_filter("LIVETIME + 1", FT2)
    with pytest.raises(FilterSyntaxError, match="needs a condition"):
        evaluate_filter("DATA_QUAL && LAT_CONFIG", FT2)
    with pytest.raises(FilterSyntaxError, match="empty"):
        parse_filter("   ")


def test_filter_columns_and_tokens():
    assert filter_columns("(DATA_QUAL>0)&&(LAT_CONFIG==1)&&ABS(ROCK_ANGLE)<52 && IN_SAA!=T") == [
        "DATA_QUAL", "LAT_CONFIG", "ROCK_ANGLE", "IN_SAA"]
    assert [t.text for t in tokenize("a.and.b")][:3] == ["a", "&&", "b"]


@pytest.mark.shared_data
def test_gtselect_history_filter_keeps_every_event(crab_day):
    """The filter string gtselect wrote into the FT1 history selects all 1507 events."""
    from fermixr.io.ft1 import read_ft1

    ev, gti = read_ft1(crab_day / "ft1.fits.gz")
    expr = ("((EVENT_CLASS&o200) != o0) && ((EVENT_TYPE&o3) != o0) && "
            "angsep(RA,DEC,83.6331,22.0145) < 15 && 200 < ENERGY && ENERGY <= 20000 && "
            "0 < ZENITH_ANGLE && ZENITH_ANGLE <= 90 && gtifilter()")
    table = {k: ev[k].values for k in ev.data_vars}
    mask = evaluate_filter(expr, table, gti=(gti["START"].values, gti["STOP"].values))
    assert mask.sum() == 1507
    tighter = evaluate_filter("angsep(RA,DEC,83.6331,22.0145) < 3 && ENERGY > 1000", table)
    assert 0 < tighter.sum() < 200
