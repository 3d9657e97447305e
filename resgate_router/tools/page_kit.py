"""The drawing kit of the synthetic pages: text tiers, palette, word lists, the ``_Page`` canvas that
remembers what it drew, and value generators (money, dates, phones, names)."""

from __future__ import annotations

import functools
import random
from typing import Any, cast

from PIL import Image, ImageChops, ImageDraw, ImageFont

from .scoring import contains_key

# Font size as a fraction of the page's long side. On a 2200 px page: xl 57-70 px (read at a 384 px
# long side), l 40-48 (512), m 24-31 (768), s 16-20 (native).
_TIERS = {"xl": (0.026, 0.032), "l": (0.018, 0.022), "m": (0.011, 0.014), "s": (0.0075, 0.009)}

_PAPER = (252, 251, 247)
_INK = (28, 28, 30)
_GREY = (105, 105, 110)
_RULE = (170, 170, 175)
_PEN = (22, 40, 120)  # filled-in form values
_ACCENT = (20, 70, 110)


def _words(text: str) -> list[str]:
    return [word.strip() for word in text.split(";")]


_COMPANY_A = _words(
    "Northwind; Bluebird; Crescent; Summit; Ironwood; Harbor; Maple; Silverline; Redstone; Evergreen; Lakeside; "
    "Pinnacle; Granite; Brightwater; Foxglove; Westbrook"
)
_COMPANY_B = _words(
    "Traders; Logistics; Supply Co.; Industries; Consulting; Labs; Systems; Partners; Manufacturing; Holdings"
)
_FIRST = _words(
    "Maria; James; Aisha; Daniel; Sofia; Kenji; Laura; Omar; Priya; Lucas; Elena; Samuel; Chloe; Mateo; Grace; Victor"
)
_LAST = _words(
    "Garcia; Okafor; Schmidt; Tanaka; Novak; Patel; Moreau; Lindqvist; Rossi; Kowalski; Haddad; Fischer; Brennan;"
    " Castillo; Ivanova; Nguyen"
)
_STREETS = _words(
    "Oak Street; Harbor Road; Elm Avenue; Mill Lane; Station Road; Cedar Drive; King Street; Park Avenue; Willow "
    "Way; Bridge Street"
)
_CITIES = _words(
    "Springfield, IL 62704; Portland, OR 97205; Austin, TX 78701; Madison, WI 53703; Raleigh, NC 27601; Boulder, "
    "CO 80302; Dayton, OH 45402; Tacoma, WA 98402"
)
_PRODUCTS = _words(
    "Steel brackets (box of 50); Consulting hours; Printer toner cartridge; Shipping pallets; Safety gloves; LED "
    "panel 60x60; Network switch 24-port; Office chairs; Copy paper (case); Hydraulic hose 2m; Annual software "
    "license; Cable ties (pack)"
)
_GROCERIES = _words(
    "Whole milk 1L; Sourdough bread; Bananas; Free-range eggs; Cheddar cheese; Olive oil; Ground coffee; Orange "
    "juice; Pasta 500g; Tomatoes; Greek yogurt; Chicken breast; Rice 2kg; Apples"
)
_STORES = _words("GREENLEAF MARKET; CORNER FRESH; SUNNYSIDE GROCERY; MAPLE STREET DELI; HARBOR FOODS; CITY PANTRY")
_FORMS = _words("EMPLOYEE ONBOARDING FORM; PATIENT INTAKE FORM; VENDOR REGISTRATION FORM; MEMBERSHIP APPLICATION")
_DEPARTMENTS = _words("Accounting; Engineering; Marketing; Procurement; Research; Warehouse; Legal")
_ROWS = _words("North; South; East; West; Central; Northeast; Southwest; Pacific; Mountain; Atlantic")
_REPORTS = _words("Quarterly Sales Report; Regional Revenue Summary; Shipments by Region; Units Sold by Quarter")


@functools.lru_cache(maxsize=256)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return cast(
        ImageFont.FreeTypeFont, ImageFont.load_default(size=size)
    )  # Aileron (FreeType, Pillow >= 10.1), same on every machine


class _Page:
    """A page being drawn: every string drawn is remembered, answers become question candidates."""

    def __init__(self, width: int, height: int, rng: random.Random) -> None:
        self.image = Image.new("RGB", (width, height), _PAPER)
        self.draw = ImageDraw.Draw(self.image)
        self.rng, self.width, self.height = rng, width, height
        self.texts: list[str] = []
        self.candidates: list[tuple[str, str, int]] = []  # (question, answer, text_px)

    def px(self, *tiers: str) -> int:
        low, high = _TIERS[self.rng.choice(tiers)]
        return max(10, round(self.rng.uniform(low, high) * max(self.width, self.height)))

    def text(
        self,
        xy: tuple[float, float],
        text: str,
        size: int,
        *,
        fill: tuple[int, int, int] = _INK,
        anchor: str = "la",
        max_width: float | None = None,
        bold: bool = False,
    ) -> int:
        """Draw ``text`` (shrunk to ``max_width``); returns the font size used."""
        while max_width is not None and size > 10 and _font(size).getlength(text) > max_width:
            size -= 1
        stroke = size // 28 if bold else 0  # a 1 px stroke smudges text below 28 px
        self.draw.text(xy, text, font=_font(size), fill=fill, anchor=anchor, stroke_width=stroke, stroke_fill=fill)
        box = self.draw.textbbox(xy, text, font=_font(size), anchor=anchor, stroke_width=stroke)
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= self.width and box[3] <= self.height, (text, box)
        self.texts.append(text)
        return size

    def answer(self, question: str, xy: tuple[float, float], value: str, size: int, **kw: Any) -> int:
        size = self.text(xy, value, size, **kw)
        self.candidates.append((question, value, size))
        return size

    def rule(
        self, y: float, x0: float, x1: float, *, fill: tuple[int, int, int] = _RULE, width: int = 2, dash: int = 0
    ) -> None:
        if not dash:
            self.draw.line([(x0, y), (x1, y)], fill=fill, width=width)
            return
        for x in range(int(x0), int(x1), 2 * dash):
            self.draw.line([(x, y), (min(x + dash, x1), y)], fill=fill, width=width)

    def questions(self) -> list[tuple[str, str, int]]:
        """2-4 questions whose answer occurs exactly once on the page, spread over its text sizes."""
        everything = "".join(contains_key(text) for text in self.texts)
        unique = [
            c
            for c in self.candidates
            if len(key := contains_key(c[1])) >= 4
            and everything.count(key) == 1
            and sum(key in contains_key(text) for text in self.texts) == 1
        ]
        self.rng.shuffle(unique)
        unique.sort(key=lambda c: c[2])
        k = min(self.rng.randint(2, 4), len(unique))
        assert k >= 2, f"only {len(unique)} unique answers on a page"  # builders offer many more
        picks = sorted({round(i * (len(unique) - 1) / (k - 1)) for i in range(k)})
        return [unique[i] for i in picks]

    def finish(self) -> Image.Image:
        """Light scan texture: sparse grey specks (deterministic, from the page's rng)."""
        specks = Image.frombytes("L", self.image.size, self.rng.randbytes(self.width * self.height))
        specks = specks.point(lambda v: 0 if v < 252 else (v - 251) * 12)
        return ImageChops.subtract(self.image, Image.merge("RGB", (specks, specks, specks)))


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _date(rng: random.Random, years: tuple[int, int] = (2022, 2025)) -> str:
    return f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(*years)}"


def _phone(rng: random.Random) -> str:
    return f"({rng.randint(201, 989)}) {rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
