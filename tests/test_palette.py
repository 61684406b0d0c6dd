"""The workbook's colours stay apart for readers with red-green colour blindness, the colours of one view stay apart
for readers with blue-yellow colour blindness (tritanopia), and blue means only "loaded".

Colour-vision deficiency is simulated with the matrices of Machado, Oliveira & Fernandes, "A Physiologically-based
Model for Simulation of Color Vision Deficiency", IEEE TVCG 15(6), 2009 (severity 1.0, applied to linear RGB; the
authors' table: https://www.inf.ufrgs.br/~oliveira/pubs_files/CVD_Simulation/CVD_Simulation.html). Colours are
compared with CIEDE2000 (Sharma, Wu & Dalal, "The CIEDE2000 color-difference formula: implementation notes,
supplementary test data, and mathematical observations", Color Research & Application 30(1), 2005).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workbook.widgets.pipeline import HIGHLIGHT
from workbook.widgets.pool_view import POOL_COLOURS
from workbook.widgets.serving_timeline import STATES
from workbook.widgets.style import (ACCEPTED, BONUS, CHART_COLOURS, PALETTE, PROVENANCE_COLOURS, REJECTED, TEXT_ON,
                                    WITH_CACHE, WITHOUT_CACHE)

NORMAL = np.eye(3)
MACHADO_2009 = {  # severity 1.0
    "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779],
                            [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
VISIONS = {"normal": NORMAL, **MACHADO_2009}
RED_GREEN = ("normal", "protanopia", "deuteranopia")
# About 1 is a just-noticeable difference; 15 asks for colours told apart at a glance, in a small swatch. The pair
# the review flagged (orange #E69F00 next to vermillion #D55E00) scores 12.5 under deuteranopia and fails it.
MIN_DIFFERENCE = 15.0


def linear_rgb(colour: str) -> np.ndarray:
    """'#RRGGBB' (sRGB) -> linear RGB in [0, 1] (the sRGB transfer function undone)."""
    c = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def lab(rgb: np.ndarray) -> np.ndarray:
    """Linear sRGB -> CIELAB (D65 white)."""
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = to_xyz @ np.clip(rgb, 0, 1) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(colour: str, vision: str) -> np.ndarray:
    """The CIELAB colour a reader with `vision` sees for `colour`."""
    return lab(VISIONS[vision] @ linear_rgb(colour))


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """The CIEDE2000 colour difference, written out as in Sharma, Wu & Dalal (2005), equations 1-22."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        h_mean = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_mean = (h1 + h2) / 2
    else:
        h_mean = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    r_t = (-2 * np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7))
           * np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2)))))
    return float(np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)))


def difference(a: str, b: str, vision: str) -> float:
    return ciede2000(seen(a, vision), seen(b, vision))


@pytest.mark.parametrize("lab1, lab2, expected", [  # Sharma, Wu & Dalal (2005), table 1, pairs 1, 7 and 17
    ((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425),
    ((50, 0, 0), (50, -1, 2), 2.3669),
    ((50, 2.5, 0), (73, 25, -18), 27.1492),
])
def test_ciede2000_matches_the_published_test_data(lab1, lab2, expected):
    assert ciede2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)


def test_the_simulation_confuses_what_red_green_colour_blind_readers_confuse():
    red, green = "#FF0000", "#00FF00"
    assert difference(red, green, "normal") > 80
    for vision in ("protanopia", "deuteranopia"):  # pure red and pure green collapse towards the same yellow-brown axis
        assert difference(red, green, vision) < difference(red, green, "normal") / 2


@pytest.mark.parametrize("vision", RED_GREEN)
def test_every_pair_of_palette_colours_stays_distinguishable(vision):
    too_close = [(a, b, round(difference(a, b, vision), 1)) for a, b in itertools.combinations(PALETTE, 2)
                 if difference(a, b, vision) < MIN_DIFFERENCE]
    assert not too_close, f"under {vision}, these pairs are hard to tell apart: {too_close}"


# Tritanopia (about 1 reader in 10,000) confuses blue with green and light yellow with grey, so the whole palette
# cannot stay apart under it; what must stay apart is each set of colours one view shows together.
SHOWN_TOGETHER = {
    "provenance (every token strip and K/V table)": list(PROVENANCE_COLOURS.values()),
    "speculative decoding": [ACCEPTED, REJECTED, BONUS],
    "without and with a cache": [WITHOUT_CACHE, WITH_CACHE],
    "the page pool": list(POOL_COLOURS.values()),
    "the serving timeline": [colour for colour, _, _ in STATES.values()],
}


@pytest.mark.parametrize("view", list(SHOWN_TOGETHER))
def test_the_colours_of_one_view_stay_apart_under_tritanopia(view):
    colours = SHOWN_TOGETHER[view]
    too_close = [(a, b, round(difference(a, b, "tritanopia"), 1)) for a, b in itertools.combinations(colours, 2)
                 if difference(a, b, "tritanopia") < MIN_DIFFERENCE]
    assert not too_close, f"{view}: under tritanopia these are hard to tell apart: {too_close}"


def test_tritanopia_confuses_what_blue_yellow_colour_blind_readers_confuse():
    blue, green = "#0072B2", "#009E73"  # far apart for every other reader, close for a tritanope
    assert min(difference(blue, green, vision) for vision in RED_GREEN) > 2 * difference(blue, green, "tritanopia")
    red, green = "#FF0000", "#00FF00"  # and red-green, which the other two lose, stays apart
    assert difference(red, green, "tritanopia") > max(difference(red, green, v) for v in ("protanopia", "deuteranopia"))


def test_the_pair_the_review_flagged_fails_the_same_check():
    assert difference("#E69F00", "#D55E00", "deuteranopia") < MIN_DIFFERENCE  # the old computed vs invalidated


def test_the_palette_holds_every_colour_the_views_use():
    used = {*PROVENANCE_COLOURS.values(), ACCEPTED, REJECTED, BONUS, WITHOUT_CACHE, WITH_CACHE, HIGHLIGHT,
            *CHART_COLOURS}
    assert set(PALETTE) == used
    assert all(colour in TEXT_ON for colour in PALETTE)  # each can be a background, with readable text on it


def test_blue_means_loaded_and_nothing_else():
    def is_blue(colour: str) -> bool:  # a CIELAB hue between 200° (cyan-blue) and 300° (violet-blue), with colour
        _, a, b = seen(colour, "normal")
        return np.hypot(a, b) > 10 and 200 <= np.degrees(np.arctan2(b, a)) % 360 <= 300

    assert is_blue(PROVENANCE_COLOURS["loaded"]) and is_blue("#56B4E9")  # the old "without cache" sky blue was one
    assert [c for c in PALETTE if is_blue(c)] == [PROVENANCE_COLOURS["loaded"]]
