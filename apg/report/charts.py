"""The report's charts, drawn with matplotlib and returned as ``data:`` URIs of SVG files.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state, so nothing leaks into the
caller's process) and saved with a fixed hash salt and no date, so the same input gives the same
bytes. Dense layers (scatter points, silhouette bands) are rasterised inside the SVG so files
stay small at any row count; inputs are samples (see ``apg.report.html``).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from apg.report.avatars import NOISE_COLOUR

RC: dict[str, Any] = {
    "svg.hashsalt": "apg-report",
    "svg.fonttype": "none",  # text stays text: small files, the page's font, selectable
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "figure.dpi": 100,
    "savefig.dpi": 144,  # resolution of the rasterised layers
    "path.simplify": True,
}
ALGORITHM_MARKERS = {"kmeans": "o", "agglomerative": "s", "dbscan": "D"}
WINNER_COLOUR = "#d62728"


@dataclass(frozen=True)
class Series:
    """How the charts name and colour one persona (cluster label ``cluster``)."""

    cluster: int
    tag: str  # the persona id, e.g. "P1"
    label: str  # e.g. "P1 Busy Buyer" (plain text; escaped for mathtext here)
    colour: str


def text(value: str, limit: int = 40) -> str:
    """Data text safe for matplotlib: ``$`` would start mathtext; long text is cut."""
    value = " ".join(str(value).split())
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value.replace("$", r"\$")


def _style() -> AbstractContextManager[None]:
    """The charts' matplotlib settings, applied while a figure is built and saved."""
    return matplotlib.rc_context(RC)  # type: ignore[arg-type]


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    with _style():
        fig.savefig(
            buf,
            format="svg",
            metadata={"Date": None, "Creator": None},
            bbox_inches="tight",
            pad_inches=0.08,
        )
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    with _style():
        return Figure(figsize=(width, height), layout=None)


def _ax(fig: Figure, *args: int, **kwargs: Any) -> Axes:
    with _style():
        return fig.add_subplot(*args, **kwargs)


def elbow_chart(wcss: dict[int, float], elbow_k: int | None) -> str | None:
    """K-Means WCSS (inertia) against k, with the elbow marked; None without K-Means."""
    if not wcss:
        return None
    ks = sorted(wcss)
    fig = _figure(5.6, 3.4)
    ax = _ax(fig)
    with _style():
        ax.plot(ks, [wcss[k] for k in ks], marker="o", color="#1f77b4", lw=1.8)
        if elbow_k is not None and elbow_k in wcss:
            ax.axvline(elbow_k, color=WINNER_COLOUR, ls="--", lw=1)
            ax.plot(
                [elbow_k], [wcss[elbow_k]], marker="o", ms=11, mfc="none", mec=WINNER_COLOUR, mew=2
            )
            ax.annotate(
                f"elbow k = {elbow_k}",
                (elbow_k, wcss[elbow_k]),
                xytext=(12, 12),
                textcoords="offset points",
                color=WINNER_COLOUR,
                fontweight="bold",
            )
        ax.set_xticks(ks)
        ax.set_xlabel("k (number of clusters)")
        ax.set_ylabel("within-cluster sum of squares")
        ax.set_title("Elbow: WCSS vs k (K-Means)")
        ax.grid(alpha=0.3)
    return to_data_uri(fig)


@dataclass(frozen=True)
class CandidatePoint:
    algorithm: str
    group: str  # the series within the algorithm, e.g. "ward" or "min_samples=10"
    n_clusters: int
    silhouette: float
    eligible: bool
    selected: bool


GROUP_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d", "#666666")


def candidate_chart(points: Sequence[CandidatePoint]) -> str | None:
    """Silhouette of every candidate against the clusters it found, one series per algorithm
    (and linkage or min_samples); hollow markers are not eligible; the winner is a red star."""
    groups = sorted(
        {(p.algorithm, p.group) for p in points},
        key=lambda g: (list(ALGORITHM_MARKERS).index(g[0]), g[1]),
    )
    if not groups:
        return None
    fig = _figure(5.6, 3.6)
    ax = _ax(fig)
    with _style():
        for j, (algorithm, group) in enumerate(groups):
            pts = sorted(
                (p for p in points if (p.algorithm, p.group) == (algorithm, group)),
                key=lambda p: (p.n_clusters, -p.silhouette),
            )
            colour = GROUP_COLOURS[j % len(GROUP_COLOURS)]
            marker = ALGORITHM_MARKERS.get(algorithm, "o")
            label = text(algorithm if group == algorithm else f"{algorithm} · {group}", 48)
            xs, ys = [p.n_clusters for p in pts], [p.silhouette for p in pts]
            if algorithm != "dbscan":  # a k grid reads as a curve; eps settings do not
                ax.plot(xs, ys, color=colour, lw=1, alpha=0.55)
            ax.scatter(
                xs,
                ys,
                s=28,
                marker=marker,
                zorder=3,
                label=label,
                linewidths=1.2,
                facecolors=[colour if p.eligible else "white" for p in pts],
                edgecolors=colour,
            )
        for p in points:
            if p.selected:
                ax.scatter(
                    [p.n_clusters],
                    [p.silhouette],
                    marker="*",
                    s=300,
                    zorder=4,
                    color=WINNER_COLOUR,
                    edgecolors="black",
                    linewidths=0.6,
                )
                ax.annotate(
                    "chosen",
                    (p.n_clusters, p.silhouette),
                    xytext=(9, 7),
                    textcoords="offset points",
                    color=WINNER_COLOUR,
                    fontweight="bold",
                )
        ax.set_xlabel("clusters found")
        ax.set_ylabel("silhouette")
        ax.set_title("Silhouette of every candidate (hollow: not eligible)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(
            fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2
        )
    return to_data_uri(fig)


def _note(shown: int, total: int | None) -> str:
    return f" (sample of {shown:,} of {total:,})" if total and shown < total else ""


def silhouette_plot(
    X: np.ndarray, labels: np.ndarray, series: Sequence[Series], total: int | None = None
) -> str | None:
    """Per-user silhouettes, one band per persona; ``X`` and ``labels`` are the (sampled)
    users in a persona, ``total`` how many users are in a persona in the whole run."""
    from sklearn.metrics import silhouette_samples

    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return None
    values = silhouette_samples(X, labels)
    fig = _figure(5.6, min(2.8 + 0.3 * len(series), 6.0))
    ax = _ax(fig)
    with _style():
        y, ticks, names = 0, [], []
        gap = max(len(values) // 60, 2)
        for s in reversed(series):
            v = np.sort(values[labels == s.cluster])
            if not len(v):
                continue
            ax.fill_betweenx(np.arange(y, y + len(v)), 0, v, color=s.colour, lw=0, rasterized=True)
            ticks.append(y + len(v) / 2)
            names.append(text(s.label, 22))
            y += len(v) + gap
        mean = float(values.mean())
        ax.axvline(mean, color="black", ls="--", lw=1)
        ax.set_yticks(ticks, names)
        ax.set_ylim(0, y)
        ax.set_xlim(min(-0.1, float(values.min()) - 0.02), 1)
        ax.set_xlabel("silhouette of each user (1 = clearly in its persona, < 0 = nearer another)")
        ax.set_title(
            f"Silhouette of the chosen clustering: mean {mean:.3f} (dashed)"
            + _note(len(values), total)
        )
    return to_data_uri(fig)


def projection_map(
    X: np.ndarray,
    labels: np.ndarray,
    series: Sequence[Series],
    total: int | None = None,
    seed: int = 0,
) -> str | None:
    """PCA(2) of (a sample of) the clustered matrix, coloured by persona, noise grey."""
    from sklearn.decomposition import PCA

    if len(X) < 3:
        return None
    if X.shape[1] >= 2 and float(X.var(axis=0).sum()) > 0:
        pca = PCA(n_components=2, random_state=seed).fit(X)
        xy = pca.transform(X)
        ratio = pca.explained_variance_ratio_
        axis = [f"PC{i + 1} ({r:.0%} of variance)" for i, r in enumerate(ratio)]
    else:
        xy = np.column_stack([X[:, 0], np.zeros(len(X))])
        axis = ["first clustered column", ""]
    fig = _figure(5.6, 4.4)
    ax = _ax(fig)
    size = 14 if len(X) <= 1000 else 6
    with _style():
        present = set(np.unique(labels).tolist())
        for s in (s for s in series if s.cluster in present):
            m = labels == s.cluster
            ax.scatter(
                xy[m, 0],
                xy[m, 1],
                s=size,
                color=s.colour,
                alpha=0.7,
                lw=0,
                rasterized=True,
                label=text(s.label, 30),
            )
        noise = labels < 0
        if noise.any():
            ax.scatter(
                xy[noise, 0],
                xy[noise, 1],
                s=size,
                color=NOISE_COLOUR,
                alpha=0.9,
                marker="x",
                lw=0.8,
                rasterized=True,
                label="noise (fits no persona)",
            )
        ax.set_xlabel(axis[0])
        ax.set_ylabel(axis[1])
        ax.set_title("Map of users: PCA of the clustered features" + _note(len(X), total))
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.13),
            ncols=2,
            fontsize=8,
            markerscale=2.5,
            frameon=False,
        )
    return to_data_uri(fig)


def _node_counts(Z: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Label counts under every node of a linkage tree (leaves 0..n-1, merges n..2n-2)."""
    n = len(codes)
    counts = np.zeros((2 * n - 1, n_codes), dtype=np.int64)
    counts[np.arange(n), codes] = 1
    for i, (a, b) in enumerate(Z[:, :2].astype(np.intp)):
        counts[n + i] = counts[a] + counts[b]
    return counts


def dendrogram_chart(
    X: np.ndarray,
    labels: np.ndarray,
    series: Sequence[Series],
    method: str,
    total: int | None = None,
    leaves: int = 30,
) -> str | None:
    """The hierarchical tree (``method`` linkage) recomputed on (a sample of) the clustered
    matrix, truncated to its last ``leaves`` merges; branches where one persona holds >= 80%
    of the users take its colour."""
    from scipy.cluster.hierarchy import dendrogram, linkage

    if len(X) < 3:
        return None
    Z = linkage(X, method=method)
    if not float(Z[:, 2].max()) > 0:
        return None  # every user at the same point: no tree to show
    order = [s.cluster for s in series]
    code_of = {c: i for i, c in enumerate(order)}
    codes = np.array([code_of.get(int(c), len(order)) for c in labels], dtype=np.intp)
    counts = _node_counts(Z, codes, len(order) + 1)
    colours = [s.colour for s in series] + [NOISE_COLOUR]
    short = [s.tag for s in series] + ["noise"]

    def colour_of(node: int) -> str:
        c = counts[node]
        top = int(np.argmax(c))
        return colours[top] if c[top] >= 0.8 * c.sum() else "#777777"

    def leaf_label(node: int) -> str:
        c = counts[node]
        top = int(np.argmax(c))
        return f"{short[top]} ({int(c.sum())})"

    fig = _figure(10.0, 3.0)
    ax = _ax(fig)
    with _style():
        tree = dendrogram(
            Z,
            truncate_mode="lastp",
            p=min(leaves, len(X)),
            ax=ax,
            link_color_func=colour_of,
            leaf_label_func=leaf_label,
            leaf_rotation=90,
            leaf_font_size=7,
            above_threshold_color="#777777",
            no_plot=False,
        )
        for tick, node in zip(ax.get_xticklabels(), tree["leaves"], strict=True):
            tick.set_color(colour_of(node))
        ax.set_ylabel(f"merge distance ({method})")
        ax.set_title(f"Hierarchical tree, {method} linkage" + _note(len(X), total))
        ax.spines["bottom"].set_visible(False)
    return to_data_uri(fig)
