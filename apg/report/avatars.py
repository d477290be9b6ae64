"""Persona colours and avatars: a small SVG illustration drawn from a seeded palette.

Avatars are made offline and deterministically from the persona (its id and name seed the
choice of skin tone, hair, glasses; its attitude sets the mouth), never from photos. The same
persona colour is used for its avatar and for its points, bars and bands in every chart.
"""

from __future__ import annotations

import hashlib
import random
from html import escape

# Colour-blind-aware categorical palette (no grey: grey means noise in every chart).
PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#ad494a",
)
NOISE_COLOUR = "#888888"

SKIN: tuple[str, ...] = ("#f6d7c3", "#eec1a2", "#d9a27e", "#b97d56", "#8d5a3b", "#5e3b26")
HAIR: tuple[str, ...] = (
    "#2b1d14",
    "#4a3121",
    "#7a4e2d",
    "#b5875a",
    "#d8b66c",
    "#8a8a8a",
    "#1c1c1c",
)
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bun", "curly", "bald", "side")


def persona_colour(index: int) -> str:
    """The colour of the ``index``-th persona (0-based, in persona order)."""
    return PALETTE[index % len(PALETTE)]


def _shade(colour: str, factor: float) -> str:
    """``colour`` darkened (factor < 1) or lightened towards white (factor > 1)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    if factor <= 1:
        r, g, b = (round(c * factor) for c in (r, g, b))
    else:
        t = min(factor - 1, 1.0)
        r, g, b = (round(c + (255 - c) * t) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _hair(style: str, colour: str, behind: bool) -> list[str]:
    """Hair shapes; ``behind`` is drawn before the head, the rest after."""
    f = f'fill="{colour}"'
    if behind:
        if style == "long":
            return [f'<rect x="27" y="30" width="42" height="44" rx="14" {f}/>']
        if style == "bun":
            return [f'<circle cx="48" cy="17" r="9" {f}/>']
        return []
    if style == "short":
        return [f'<path d="M29 42 Q29 20 48 20 Q67 20 67 42 Q62 30 48 30 Q34 30 29 42Z" {f}/>']
    if style == "long":
        return [f'<path d="M28 46 Q28 19 48 19 Q68 19 68 46 Q60 29 48 29 Q36 29 28 46Z" {f}/>']
    if style == "bun":
        return [f'<path d="M30 40 Q30 22 48 22 Q66 22 66 40 Q58 30 48 30 Q38 30 30 40Z" {f}/>']
    if style == "curly":
        return [
            f'<circle cx="{x}" cy="{y}" r="7" {f}/>'
            for x, y in ((33, 31), (40, 24), (48, 22), (56, 24), (63, 31), (30, 39), (66, 39))
        ]
    if style == "side":
        return [f'<path d="M29 43 Q27 20 50 20 Q68 21 67 40 Q56 27 36 33 Q32 36 29 43Z" {f}/>']
    return []  # bald


def avatar_svg(persona_id: str, name: str, colour: str, mood: float = 0.0, size: int = 96) -> str:
    """An inline ``<svg>`` avatar for a persona.

    ``mood`` in [-1, 1] (e.g. the persona's attitudinal contrast) bends the mouth from a slight
    frown to a smile. Only numbers and palette colours go into the markup; the persona name is
    escaped into the accessible title.
    """
    rng = _rng(persona_id, name)
    skin = rng.choice(SKIN)
    hair = rng.choice(HAIR)
    style = rng.choice(HAIR_STYLES)
    glasses = rng.random() < 0.3
    shirt = _shade(colour, 0.6)
    mood = max(-1.0, min(1.0, mood))
    smile = 54 + 5 * mood  # control point of the mouth curve
    parts = [
        f'<svg class="avatar" viewBox="0 0 96 96" width="{size}" height="{size}" role="img" '
        f'aria-label="Avatar of {escape(name)}">',
        f"<title>{escape(name)}</title>",
        f'<circle cx="48" cy="48" r="48" fill="{_shade(colour, 1.55)}"/>',
        f'<path d="M16 96 Q18 70 48 68 Q78 70 80 96Z" fill="{shirt}"/>',
        *_hair(style, hair, behind=True),
        f'<rect x="42" y="56" width="12" height="14" rx="4" fill="{_shade(skin, 0.9)}"/>',
        f'<ellipse cx="48" cy="42" rx="18" ry="21" fill="{skin}"/>',
        *_hair(style, hair, behind=False),
        '<circle cx="41" cy="42" r="2.2" fill="#222"/>',
        '<circle cx="55" cy="42" r="2.2" fill="#222"/>',
        f'<path d="M42 51 Q48 {smile:.1f} 54 51" stroke="#6b3b2a" stroke-width="2" '
        'fill="none" stroke-linecap="round"/>',
    ]
    if glasses:
        parts += [
            '<g fill="none" stroke="#333" stroke-width="1.6">',
            '<circle cx="41" cy="42" r="5.5"/><circle cx="55" cy="42" r="5.5"/>',
            '<path d="M46.5 42 H49.5"/></g>',
        ]
    parts.append("</svg>")
    return "".join(parts)
