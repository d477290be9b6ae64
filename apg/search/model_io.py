"""The fitted model of a run as plain data: JSON plus arrays, never pickle.

A stored model holds everything needed to place a new user into one of a run's clusters: the
fitted preprocessing (date rules, imputation values, transforms, scaler parameters, two-valued
flags, one-hot categories, the redundant columns dropped, PCA) and the
winner's assignment rule (:class:`apg.search.clusters.ClusterModel`: k-means centres, agglomerative
cluster centroids, or DBSCAN core samples with eps). Arrays are base64 of ``np.save`` bytes
written and read with ``allow_pickle=False``, so loading a model parses numbers and text and
never executes code.

:meth:`StoredModel.transform` equals the fitted scikit-learn ``transformer.transform`` (to
floating-point rounding) and :meth:`StoredModel.predict` applies the rule:

* ``kmeans``: the nearest centre, which is how k-means labelled its own users;
* ``agglomerative``: the nearest cluster centroid. A hierarchical cut is not a partition of
  space, so a user near a boundary can get a different label than the tree gave it;
  ``training_agreement`` records how often the two agree on the run's own users;
* ``dbscan``: the cluster of the nearest core sample when it is within ``eps``, else ``-1``
  (``apg.search.core_rule``, the same code a sample-mode run places its users with).
  Core samples and noise keep their labels exactly; a border point reachable from two
  clusters may go to the other one (DBSCAN gives it to whichever it reached first).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from apg.errors import DataError, StoreError, listing
from apg.prepare.dates import DateRule
from apg.prepare.encoding import FLAG_VALUE, is_value
from apg.prepare.transforms import KINDS, apply_transforms
from apg.search.clusters import ClusterModel

# 2: dates, two-valued flags or dropped redundant columns (apg.prepare.encoding). A model
# without them is written as format 1, which older apg versions read.
FORMAT = 2
FORMATS = (1, 2)


def encode_array(array: np.ndarray) -> dict[str, str]:
    """``{"npy": base64}`` of a numeric array saved without pickle."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"only numeric arrays are stored, got dtype {array.dtype}")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return {"npy": base64.b64encode(buf.getvalue()).decode("ascii")}


def decode_array(value: Any) -> np.ndarray:
    if not isinstance(value, dict) or not isinstance(value.get("npy"), str):
        raise StoreError("stored model is damaged: an array is not in {'npy': base64} form")
    try:
        return np.load(io.BytesIO(base64.b64decode(value["npy"])), allow_pickle=False)
    except ValueError as exc:
        raise StoreError(f"stored model is damaged: {exc}") from None


def categorical_as_text(data: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Categorical values compared as text, as ``apg.prepare.preprocessing`` does before fitting."""
    data = data.copy()
    for col in columns:
        data[col] = data[col].astype("string").astype(object).where(data[col].notna(), np.nan)
    return data


@dataclass
class Preprocessing:
    """The fitted ``apg.prepare.preprocessing`` transformer as parameters."""

    numeric: list[str]
    categorical: list[str]
    num_fill: np.ndarray  # per numeric column; NaN marks a column the imputer dropped
    scaler: dict[str, Any]  # {"kind": ..., parameter arrays (or None)}
    cat_fill: list[str]
    categories: list[list[str]]
    pca: dict[str, Any] | None
    # Per kept numeric column, between imputation and scaling (apg.prepare.transforms):
    # {"kinds": [...], "lambdas", "lower", "upper": arrays}; None: no transform step.
    transforms: dict[str, Any] | None = None
    # Two-valued numeric columns: `flag_value` where a user has the column's rarer value
    # (`binary_rare`; NaN: none), else 0. Between the numeric and the one-hot columns.
    binary: list[str] = field(default_factory=list)
    binary_rare: np.ndarray = field(default_factory=lambda: np.empty(0))
    flag_value: float = FLAG_VALUE
    # Date columns: DateRule.to_dict() each; read as days before the reference first.
    dates: dict[str, dict[str, str | None]] = field(default_factory=dict)
    # Positions (in the encoded columns) of the redundant columns dropped before PCA.
    drop: list[int] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.binary, *self.categorical]

    @property
    def format(self) -> int:
        """1 unless the model needs what format 2 added."""
        return 2 if self.binary or self.dates or self.drop else 1

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """The clustered-space rows of ``table`` (which holds at least :attr:`features`)."""
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            raise DataError(
                f"column(s) {listing(missing)} needed by the stored model are missing; "
                f"columns are {listing(table.columns)}"
            )
        data = categorical_as_text(table[self.features], self.categorical)
        for col, rule in self.dates.items():
            data[col] = DateRule.from_dict(rule).days(data[col])
        blocks = []
        if self.numeric:
            try:
                num = data[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise DataError(f"numeric feature columns hold non-numbers: {exc}") from None
            keep = ~np.isnan(self.num_fill)
            num = num[:, keep]
            num = np.where(np.isnan(num), np.broadcast_to(self.num_fill[keep], num.shape), num)
            if self.transforms is not None:
                t = self.transforms
                num = apply_transforms(num, t["kinds"], t["lambdas"], t["lower"], t["upper"])
            blocks.append(self._scale(num))
        if self.binary:
            flags = np.zeros((len(data), len(self.binary)), dtype=np.float64)
            for j, col in enumerate(self.binary):
                flags[is_value(data[col], float(self.binary_rare[j])), j] = self.flag_value
            blocks.append(flags)
        for i, col in enumerate(self.categorical):
            values = data[col].to_numpy(dtype=object)
            values = np.where(pd.isna(values), self.cat_fill[i], values)
            cats = np.asarray(self.categories[i], dtype=object)
            blocks.append((values[:, None] == cats[None, :]).astype(np.float64))
        X = np.hstack(blocks) if blocks else np.empty((len(table), 0))
        if self.drop:
            X = np.delete(X, self.drop, axis=1)
        if self.pca is not None:
            comps = self.pca["components"]
            out = X @ comps.T
            out -= self.pca["mean"].reshape(1, -1) @ comps.T
            if self.pca["whiten"]:
                scale = np.sqrt(self.pca["explained_variance"])
                scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
                out /= scale
            X = out
        return np.ascontiguousarray(X, dtype=np.float64)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        s, kind = self.scaler, self.scaler["kind"]
        X = X.copy()
        if kind == "standard":
            if s["mean"] is not None:
                X -= s["mean"]
            if s["scale"] is not None:
                X /= s["scale"]
        elif kind == "minmax":
            X *= s["scale"]
            X += s["min"]
            if s.get("clip"):
                np.clip(X, s["range"][0], s["range"][1], out=X)
        elif kind == "robust":
            if s["center"] is not None:
                X -= s["center"]
            if s["scale"] is not None:
                X /= s["scale"]
        elif kind != "none":
            raise StoreError(f"stored model has an unknown scaler {kind!r}")
        return X

    def to_dict(self) -> dict[str, Any]:
        pca: dict[str, Any] | None = None
        if self.pca is not None:
            pca = {
                k: encode_array(self.pca[k]) for k in ("components", "mean", "explained_variance")
            }
            pca["whiten"] = bool(self.pca["whiten"])
        return {
            "numeric": self.numeric,
            "categorical": self.categorical,
            "num_fill": encode_array(self.num_fill),
            "scaler": {
                k: encode_array(v) if isinstance(v, np.ndarray) else v
                for k, v in self.scaler.items()
            },
            "cat_fill": self.cat_fill,
            "categories": self.categories,
            "pca": pca,
            "transforms": None
            if self.transforms is None
            else {
                "kinds": list(self.transforms["kinds"]),
                **{k: encode_array(self.transforms[k]) for k in ("lambdas", "lower", "upper")},
            },
            **(
                {
                    "binary": self.binary,
                    "binary_rare": encode_array(np.asarray(self.binary_rare, np.float64)),
                    "flag_value": self.flag_value,
                    "dates": self.dates,
                    "drop": [int(j) for j in self.drop],
                }
                if self.format == 2
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Preprocessing:
        pca: dict[str, Any] | None = None
        if doc["pca"] is not None:
            pca = {
                k: decode_array(doc["pca"][k]) for k in ("components", "mean", "explained_variance")
            }
            pca["whiten"] = bool(doc["pca"]["whiten"])
        return cls(
            numeric=[str(c) for c in doc["numeric"]],
            categorical=[str(c) for c in doc["categorical"]],
            num_fill=decode_array(doc["num_fill"]),
            scaler={
                k: decode_array(v) if isinstance(v, dict) else v for k, v in doc["scaler"].items()
            },
            cat_fill=[str(v) for v in doc["cat_fill"]],
            categories=[[str(v) for v in cats] for cats in doc["categories"]],
            pca=pca,
            transforms=_transforms_from(doc.get("transforms")),
            binary=[str(c) for c in doc.get("binary", [])],
            binary_rare=decode_array(doc["binary_rare"]).astype(np.float64)
            if "binary_rare" in doc
            else np.empty(0),
            flag_value=float(doc.get("flag_value", FLAG_VALUE)),
            dates={
                str(c): {"format": r["format"], "reference": str(r["reference"])}
                for c, r in doc.get("dates", {}).items()
            },
            drop=[int(j) for j in doc.get("drop", [])],
        )


def _transforms_from(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    kinds = [str(k) for k in doc["kinds"]]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise StoreError(f"stored model has unknown transform(s) {listing(unknown)}; upgrade apg")
    return {"kinds": kinds, **{k: decode_array(doc[k]) for k in ("lambdas", "lower", "upper")}}


@dataclass
class StoredModel:
    """Preprocessing plus the winner's assignment rule (``apg.search.clusters.ClusterModel``)."""

    preprocessing: Preprocessing
    cluster: ClusterModel
    algorithm: str
    params: dict[str, Any]
    training_agreement: float | None = None  # share of the run's users assigned as labelled

    @property
    def features(self) -> list[str]:
        return self.preprocessing.features

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        return self.preprocessing.transform(table)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.cluster.predict(np.asarray(X, dtype=np.float64))

    def assign(self, table: pd.DataFrame) -> np.ndarray:
        """Cluster labels (``-1``: outlier) for the rows of ``table``."""
        return self.predict(self.transform(table))

    def to_dict(self) -> dict[str, Any]:
        c = self.cluster
        return {
            "format": self.preprocessing.format,
            "preprocessing": self.preprocessing.to_dict(),
            "model": {
                "algorithm": self.algorithm,
                "params": self.params,
                "kind": c.kind,
                "centers": encode_array(np.asarray(c.centers, dtype=np.float64)),
                "labels": encode_array(np.asarray(c.labels, dtype=np.int64)),
                "eps": None if c.eps is None else float(c.eps),
                "training_agreement": self.training_agreement,
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> StoredModel:
        if not isinstance(doc, dict) or doc.get("format") not in FORMATS:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise StoreError(
                f"stored model format {found!r} is not supported by this apg (expects "
                f"{' or '.join(map(str, FORMATS))}); upgrade apg"
            )
        try:
            mod = doc["model"]
            if mod["kind"] not in ("centroid", "core"):
                raise StoreError(f"stored model has an unknown kind {mod['kind']!r}")
            cluster = ClusterModel(
                kind=mod["kind"],
                centers=decode_array(mod["centers"]).astype(np.float64),
                labels=decode_array(mod["labels"]).astype(np.intp),
                eps=None if mod["eps"] is None else float(mod["eps"]),
            )
            return cls(
                preprocessing=Preprocessing.from_dict(doc["preprocessing"]),
                cluster=cluster,
                algorithm=str(mod["algorithm"]),
                params=dict(mod["params"]),
                training_agreement=mod.get("training_agreement"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"stored model is damaged: missing or bad field {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> StoredModel:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(f"stored model is not valid JSON: {exc}") from None
        return cls.from_dict(doc)


def _scaler_params(scaler: Any) -> dict[str, Any]:
    name = type(scaler).__name__

    def arr(v: Any) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=np.float64)

    if name == "StandardScaler":
        return {"kind": "standard", "mean": arr(scaler.mean_), "scale": arr(scaler.scale_)}
    if name == "MinMaxScaler":
        return {
            "kind": "minmax",
            "scale": arr(scaler.scale_),
            "min": arr(scaler.min_),
            "clip": bool(scaler.clip),
            "range": [float(v) for v in scaler.feature_range],
        }
    if name == "RobustScaler":
        return {"kind": "robust", "center": arr(scaler.center_), "scale": arr(scaler.scale_)}
    raise StoreError(f"cannot store a {name} scaler; supported: standard, minmax, robust")


def preprocessing_of(transformer: Pipeline) -> Preprocessing:
    """Read the parameters out of a fitted ``build_transformer`` pipeline
    (``apg.prepare.preprocessing``)."""
    ct = transformer.named_steps["columns"]
    numeric: list[str] = []
    binary: list[str] = []
    binary_rare = np.empty(0)
    flag_value = FLAG_VALUE
    categorical: list[str] = []
    num_fill = np.empty(0)
    transforms: dict[str, Any] | None = None
    scaler: dict[str, Any] = {"kind": "none"}
    cat_fill: list[str] = []
    categories: list[list[str]] = []
    for name, part, cols in ct.transformers_:
        if name == "num":
            numeric = [str(c) for c in cols]
            num_fill = np.asarray(part.named_steps["impute"].statistics_, dtype=np.float64)
            scaler = _scaler_params(part.named_steps["scale"])
            if "transform" in part.named_steps:
                t = part.named_steps["transform"]
                transforms = {
                    "kinds": [str(k) for k in t.kinds_],
                    **{
                        k: np.asarray(getattr(t, f"{k}_"), np.float64)
                        for k in ("lambdas", "lower", "upper")
                    },
                }
        elif name == "bin":
            binary = [str(c) for c in cols]
            flag = part.named_steps["flag"]
            binary_rare = np.asarray(flag.rare_, dtype=np.float64)
            flag_value = float(flag.value)
        elif name == "cat":
            categorical = [str(c) for c in cols]
            cat_fill = [str(v) for v in part.named_steps["impute"].statistics_]
            categories = [[str(v) for v in cats] for cats in part.named_steps["onehot"].categories_]
        elif name != "remainder":
            raise StoreError(f"cannot store preprocessing step {name!r}")
    dates: dict[str, dict[str, str | None]] = {}
    if "dates" in transformer.named_steps:
        dates = {str(c): dict(r) for c, r in (transformer.named_steps["dates"].rules or {}).items()}
    drop: list[int] = []
    if "redundant" in transformer.named_steps:
        drop = [int(j) for j in np.flatnonzero(~transformer.named_steps["redundant"].keep_)]
    pca = None
    if "pca" in transformer.named_steps:
        p = transformer.named_steps["pca"]
        pca = {
            "components": np.asarray(p.components_, dtype=np.float64),
            "mean": np.asarray(p.mean_, dtype=np.float64),
            "explained_variance": np.asarray(p.explained_variance_, dtype=np.float64),
            "whiten": bool(p.whiten),
        }
    return Preprocessing(
        numeric=numeric,
        categorical=categorical,
        num_fill=num_fill,
        scaler=scaler,
        cat_fill=cat_fill,
        categories=categories,
        pca=pca,
        transforms=transforms,
        binary=binary,
        binary_rare=binary_rare,
        flag_value=flag_value,
        dates=dates,
        drop=drop,
    )


def from_fitted(
    transformer: Pipeline,
    cluster: ClusterModel,
    algorithm: str,
    params: dict[str, Any],
    X: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> StoredModel:
    """The stored form of a run's preprocessing and winner; with ``X`` and ``labels`` (the
    run's clustered rows) it also records how often the rule reproduces the run's labels."""
    model = StoredModel(preprocessing_of(transformer), cluster, algorithm, dict(params))
    if X is not None and labels is not None and len(X):
        model.training_agreement = float(np.mean(model.predict(X) == np.asarray(labels)))
    return model
