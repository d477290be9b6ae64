"""Synthetic user table with planted segments, for the offline demo and tests.

The table mimics a product-analytics export: one row per user with behavioural
counts, survey answers and demographics.  Five segments are planted in the
behavioural + attitudinal columns (see ``SEGMENTS``) so that a plain
impute -> standardise -> KMeans pipeline can find them again, while the data
still looks like real data: overdispersed counts, lognormal money, correlated
activity, a few percent missing values and a handful of extreme outliers.
Demographics lean towards each segment but never define it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

# fmt: off
ID_COLUMN = "user_id"
SEGMENT_COLUMN = "segment"
BEHAVIORAL: tuple[str, ...] = (
    "logins_per_month", "sessions_per_week", "avg_session_minutes", "features_used",
    "purchases_per_year", "avg_order_value", "support_tickets", "days_since_last_login",
    "tenure_months",
)
ATTITUDINAL: tuple[str, ...] = ("nps", "satisfaction")
DEMOGRAPHIC: tuple[str, ...] = ("age", "gender", "country", "occupation", "company_size")

GENDERS: tuple[str, ...] = ("female", "male", "non-binary")
COUNTRIES: tuple[str, ...] = ("US", "UK", "DE", "FR", "IN", "BR")
OCCUPATIONS: tuple[str, ...] = (
    "engineer", "designer", "manager", "student", "retail", "healthcare", "teacher",
)
COMPANY_SIZES: tuple[str, ...] = ("1-10", "11-50", "51-200", "201-1000", "1000+")

# Missing completely at random.  Survey answers are missing most often because
# not everyone answers the survey.
MISSING_SHARE: dict[str, float] = {
    "avg_session_minutes": 0.015, "avg_order_value": 0.02, "nps": 0.03,
    "satisfaction": 0.02, "age": 0.02, "occupation": 0.025,
}
# fmt: on
OUTLIER_SHARE = 0.003
MAX_FEATURES = 40  # size of the fictional product's feature catalogue
MAX_DAYS_SINCE_LOGIN = 365
MAX_TENURE_MONTHS = 120
# (column, min factor, max factor, decimals) for each kind of outlier.
_OUTLIERS: tuple[tuple[str, float, float, int], ...] = (
    ("avg_order_value", 5.0, 15.0, 2),
    ("avg_session_minutes", 3.0, 8.0, 1),
    ("logins_per_month", 3.0, 6.0, 0),
)
_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl")


@dataclass(frozen=True)
class SegmentSpec:
    """One planted segment: its share and the centre of each column's distribution.

    Count columns are negative-binomial around the given mean, money and session
    length are lognormal around the given median, survey answers are rounded
    normals around the given mean.  Demographic weights are aligned with
    ``COUNTRIES``, ``OCCUPATIONS`` and ``COMPANY_SIZES``.
    """

    name: str
    share: float
    description: str
    logins_per_month: float
    sessions_per_week: float
    avg_session_minutes: float
    features_used: float
    purchases_per_year: float
    avg_order_value: float
    support_tickets: float
    days_since_last_login: float
    tenure_months: float
    nps: float
    satisfaction: float
    age: float
    country: tuple[float, ...]
    occupation: tuple[float, ...]
    company_size: tuple[float, ...]


# fmt: off
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(
        "at-risk lapsers", 0.30,
        "Rarely log in, long gone since last login, low NPS and satisfaction.",
        logins_per_month=3, sessions_per_week=1, avg_session_minutes=9,
        features_used=5, purchases_per_year=2, avg_order_value=40,
        support_tickets=1, days_since_last_login=45, tenure_months=30,
        nps=3.5, satisfaction=2.6, age=41,
        country=(.30, .15, .15, .15, .15, .10),
        occupation=(.15, .10, .10, .10, .25, .15, .15),
        company_size=(.20, .25, .25, .15, .15),
    ),
    SegmentSpec(
        "power users", 0.25,
        "Log in daily, long sessions, use many features, promoters.",
        logins_per_month=32, sessions_per_week=8, avg_session_minutes=35,
        features_used=22, purchases_per_year=6, avg_order_value=45,
        support_tickets=1, days_since_last_login=1, tenure_months=36,
        nps=9, satisfaction=4.5, age=33,
        country=(.35, .15, .15, .05, .20, .10),
        occupation=(.40, .25, .10, .05, .05, .05, .10),
        company_size=(.10, .20, .30, .25, .15),
    ),
    SegmentSpec(
        "newcomers", 0.20,
        "Joined in the last few months, explore only a few features.",
        logins_per_month=18, sessions_per_week=5, avg_session_minutes=15,
        features_used=3, purchases_per_year=1, avg_order_value=30,
        support_tickets=1, days_since_last_login=3, tenure_months=2,
        nps=8, satisfaction=4.0, age=26,
        country=(.25, .10, .10, .10, .25, .20),
        occupation=(.15, .15, .05, .40, .10, .05, .10),
        company_size=(.35, .25, .20, .10, .10),
    ),
    SegmentSpec(
        "big spenders", 0.15,
        "Buy often with large baskets; loyal, long-tenured, mostly managers.",
        logins_per_month=18, sessions_per_week=4, avg_session_minutes=20,
        features_used=12, purchases_per_year=24, avg_order_value=150,
        support_tickets=1, days_since_last_login=4, tenure_months=50,
        nps=8, satisfaction=4.2, age=46,
        country=(.40, .20, .15, .15, .05, .05),
        occupation=(.15, .05, .45, .02, .08, .15, .10),
        company_size=(.05, .10, .20, .30, .35),
    ),
    SegmentSpec(
        "support-heavy strugglers", 0.10,
        "Active but stuck: many support tickets, long sessions, unhappy.",
        logins_per_month=20, sessions_per_week=5, avg_session_minutes=30,
        features_used=8, purchases_per_year=3, avg_order_value=50,
        support_tickets=9, days_since_last_login=5, tenure_months=14,
        nps=3, satisfaction=2.0, age=52,
        country=(.25, .20, .20, .20, .05, .10),
        occupation=(.05, .05, .15, .03, .25, .25, .22),
        company_size=(.25, .30, .20, .15, .10),
    ),
)
GENDER_WEIGHTS = (0.49, 0.47, 0.04)  # deliberately the same in every segment
_LABELS: dict[str, tuple[str, ...]] = {
    "gender": GENDERS, "country": COUNTRIES,
    "occupation": OCCUPATIONS, "company_size": COMPANY_SIZES,
}
# fmt: on


def _negbin(rng: np.random.Generator, mean: np.ndarray, shape: float) -> np.ndarray:
    """Overdispersed counts with the given mean; smaller ``shape`` = wider spread."""
    return rng.negative_binomial(shape, shape / (shape + mean)).astype(np.int64)


def _by_segment(field: str) -> np.ndarray:
    """One row per segment of a ``SegmentSpec`` field (a number or a weight vector)."""
    if field == "gender":
        return np.tile(GENDER_WEIGHTS, (len(SEGMENTS), 1))
    return np.array([getattr(s, field) for s in SEGMENTS], dtype=float)


def _draw_codes(rng: np.random.Generator, seg: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Draw a category code per row from its segment's weights (inverse CDF).

    Searching one small CDF per segment avoids a rows x categories matrix.
    """
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(seg.size)
    codes = np.empty(seg.size, dtype=np.int64)
    for i in range(len(weights)):
        rows = seg == i
        codes[rows] = np.searchsorted(cdf[i], u[rows], side="right")
    return np.minimum(codes, weights.shape[1] - 1)


def _labels_from_codes(labels: tuple[str, ...], codes: np.ndarray) -> ExtensionArray:
    """Map codes to the pandas string dtype; code -1 becomes missing."""
    # take() on a tiny string array is far faster than building a million strings.
    return pd.array(list(labels), dtype="str").take(codes, allow_fill=True)


def generate_users(rows: int, seed: int = 0, *, with_segment: bool = False) -> pd.DataFrame:
    """Return ``rows`` synthetic users; deterministic for a given ``(rows, seed)``.

    With ``with_segment=True`` a ``segment`` column holds the planted segment name,
    which is the ground truth for checking a clustering.
    """
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    rng = np.random.default_rng(seed)
    n = int(rows)
    shares = np.array([s.share for s in SEGMENTS])
    seg = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum())

    def centre(field: str) -> np.ndarray:
        return _by_segment(field)[seg]

    # A shared per-user activity level makes logins and sessions move together,
    # as they do in real usage logs, instead of being independent draws.
    activity = rng.lognormal(0.0, 0.15, n)
    data: dict[str, np.ndarray] = {
        "logins_per_month": _negbin(rng, centre("logins_per_month") * activity, 20),
        "sessions_per_week": _negbin(rng, centre("sessions_per_week") * activity, 20),
        "avg_session_minutes": np.round(
            rng.lognormal(np.log(centre("avg_session_minutes")), 0.3), 1
        ),
        "features_used": np.minimum(_negbin(rng, centre("features_used"), 20), MAX_FEATURES),
        "purchases_per_year": _negbin(rng, centre("purchases_per_year"), 15),
        # Lifetime average basket, so it exists even for users with no purchase this year.
        "avg_order_value": np.round(rng.lognormal(np.log(centre("avg_order_value")), 0.3), 2),
        "support_tickets": _negbin(rng, centre("support_tickets"), 6),
        "days_since_last_login": np.minimum(
            _negbin(rng, centre("days_since_last_login"), 8), MAX_DAYS_SINCE_LOGIN
        ),
        "tenure_months": np.minimum(
            1 + _negbin(rng, centre("tenure_months"), 5), MAX_TENURE_MONTHS
        ),
    }
    # NPS and satisfaction share a latent mood so the two survey answers agree.
    mood = rng.normal(0.0, 1.0, n)
    nps = centre("nps") + 1.2 * mood + rng.normal(0.0, 0.8, n)
    sat = centre("satisfaction") + 0.5 * mood + rng.normal(0.0, 0.35, n)
    data["nps"] = np.clip(np.round(nps), 0, 10).astype(np.int64)
    data["satisfaction"] = np.clip(np.round(sat), 1, 5).astype(np.int64)

    _add_outliers(rng, data, n)

    data["age"] = np.clip(np.round(rng.normal(centre("age"), 10.0, n)), 18, 80).astype(np.int64)
    codes = {column: _draw_codes(rng, seg, _by_segment(column)) for column in _LABELS}

    # Columns that can be missing are float64 at every size, so the schema does
    # not depend on whether a small sample happened to draw a NaN.
    for column, share in MISSING_SHARE.items():
        mask = rng.random(n) < share
        if column in codes:
            codes[column][mask] = -1
        else:
            data[column] = data[column].astype(np.float64)
            data[column][mask] = np.nan

    width = max(6, len(str(n)))
    ids = "u" + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)
    frame = pd.DataFrame({ID_COLUMN: ids.array})
    for column in BEHAVIORAL + ATTITUDINAL + ("age",):
        frame[column] = data[column]
    for column, labels in _LABELS.items():
        frame[column] = _labels_from_codes(labels, codes[column])
    if with_segment:
        frame[SEGMENT_COLUMN] = _labels_from_codes(tuple(s.name for s in SEGMENTS), seg)
    return frame


def _add_outliers(rng: np.random.Generator, data: dict[str, np.ndarray], n: int) -> None:
    """Plant a few extreme rows: bulk orders, tabs left open, scripted logins.

    Each outlier row is inflated in exactly one column.  Factors are per column
    because what counts as extreme depends on the column's natural spread; too
    wild a factor would let a handful of rows masquerade as a sixth segment.
    """
    hit = np.flatnonzero(rng.random(n) < OUTLIER_SHARE)
    kind = rng.integers(0, len(_OUTLIERS), hit.size)
    factor = rng.random(hit.size)
    for i, (column, low, high, decimals) in enumerate(_OUTLIERS):
        rows = hit[kind == i]
        scale = low + (high - low) * factor[kind == i]
        values = np.round((data[column][rows] + 1) * scale, decimals)  # +1: zeros too
        data[column][rows] = values.astype(data[column].dtype)


def write_sample(path: Path, rows: int, seed: int = 0) -> pd.DataFrame:
    """Generate users and write them to ``path``; the format follows the extension.

    Supported: .csv, .tsv, .parquet, .jsonl.  The planted ``segment`` column is
    never written, so the demo cannot accidentally cheat.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        found = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise ValueError(
            f"unsupported output format: {path.name!r} has {found}; "
            f"use one of {', '.join(_SUFFIXES)}"
        )
    frame = generate_users(rows, seed)
    # Whole numbers with gaps are float64 in memory; text formats get "7", not "7.0".
    whole = {c: "Int64" for c in ("nps", "satisfaction", "age")}
    out = frame if suffix == ".parquet" else frame.astype(whole)
    if suffix == ".parquet":
        out.to_parquet(path, index=False)
    elif suffix == ".jsonl":
        out.to_json(path, orient="records", lines=True)
    else:
        out.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    return frame
