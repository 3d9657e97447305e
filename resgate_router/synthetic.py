"""Synthetic document pages with known answers, for the offline demo and tests.

Invoices, forms, receipts and tables rendered with Pillow's built-in scalable font. Each text block
draws its size from a tier (a fraction of the page's long side, so receipts and landscape tables
scale alike), and which tier a field gets varies per page: some answers stay legible at a 384 px
long side, others need 768 px or the native page. Every answer occurs once on the page, so the
``contains`` metric cannot be satisfied by some other text. ``text_px`` in the output is the font
size (em height in px at native resolution) the answer was drawn with.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont

from .errors import ConfigError
from .scoring import contains_key

__all__ = ["KINDS", "generate_documents"]

KINDS = ("invoice", "form", "receipt", "table")

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
    return ImageFont.load_default(size=size)  # Aileron (FreeType, Pillow >= 10.1), same on every machine


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


def _invoice(rng: random.Random) -> _Page:
    width, height = rng.choice([(1700, 2200), (1654, 2339)])
    page, m = _Page(width, height, rng), round(0.07 * width)
    seller, buyer = rng.sample([f"{a} {b}" for a in _COMPANY_A for b in _COMPANY_B], 2)
    y = m
    size = page.answer(
        "What is the name of the company that issued this invoice?",
        (m, y),
        seller,
        page.px("xl", "l"),
        max_width=0.55 * width,
        bold=True,
    )
    page.text((width - m, y), "INVOICE", page.px("xl"), fill=_ACCENT, anchor="ra", bold=True)
    y += round(1.6 * size)
    small = page.px("s", "m")
    for line in (f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}", rng.choice(_CITIES)):
        page.text((m, y), line, small, fill=_GREY)
        y += round(1.4 * small)
    page.answer(
        "What is the phone number of the company that issued this invoice?", (m, y), _phone(rng), small, fill=_GREY
    )
    y += round(1.8 * small)
    page.rule(y, m, width - m, width=3)
    y += m // 2

    left = right = y
    page.text((m, left), "BILL TO", page.px("s"), fill=_GREY, bold=True)
    left += round(0.03 * height)
    size = page.answer("Who is the invoice billed to?", (m, left), buyer, page.px("l", "m"), max_width=0.45 * width)
    left += round(1.5 * size)
    size = page.text((m, left), "Attn:", page.px("m", "s"))
    page.answer(
        "Who is the contact person for the customer?", (m + _font(size).getlength("Attn: "), left), _person(rng), size
    )
    left += round(1.5 * size)
    page.text((m, left), f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}, {rng.choice(_CITIES)}", size)
    left += round(1.5 * size)
    meta = [
        ("Invoice No.", "What is the invoice number?", f"INV-{rng.randint(10000, 99999)}"),
        ("Invoice Date", "What is the invoice date?", _date(rng)),
        ("Due Date", "What is the due date of this invoice?", _date(rng)),
        ("PO Number", "What is the purchase order number?", f"PO-{rng.randint(100000, 999999)}"),
    ]
    for label, question, value in meta:
        size = page.px("l", "m", "s")
        page.text((0.52 * width, right + size), label, page.px("s"), fill=_GREY, anchor="ls")
        page.answer(question, (width - m, right + size), value, size, anchor="rs")
        right += round(1.5 * size)
    y = max(left, right) + m // 2

    size = page.px("m", "s")
    columns = [
        (m + 10, "Description", "la"),
        (0.62 * width, "Qty", "ra"),
        (0.8 * width, "Unit Price", "ra"),
        (width - m - 10, "Amount", "ra"),
    ]
    band = round(1.8 * size)
    page.draw.rectangle([m, y, width - m, y + band], fill=(228, 232, 238))
    for x, title, anchor in columns:
        page.text((x, y + 0.4 * size), title, size, anchor=anchor, bold=True)
    y += band
    subtotal = 0.0
    for product in rng.sample(_PRODUCTS, rng.randint(3, 7)):
        qty, unit = rng.randint(1, 40), rng.randint(500, 90000) / 100
        subtotal += qty * unit
        values = (product, str(qty), _money(unit), _money(qty * unit))
        for (x, _, anchor), value in zip(columns, values):
            page.text((x, y + 0.4 * size), value, size, anchor=anchor, max_width=0.45 * width)
        page.candidates.append((f'What is the amount for "{product}"?', values[3], size))
        y += band
        page.rule(y, m, width - m)
    y += m // 2
    tax_rate = rng.choice([5.0, 6.25, 7.5, 8.25, 10.0])
    tax = round(subtotal * tax_rate / 100, 2)
    totals = [
        ("Subtotal", "What is the subtotal?", _money(subtotal), size),
        (f"Tax ({tax_rate:g}%)", "What is the tax amount?", _money(tax), size),
        ("Total Due", "What is the total amount due?", _money(subtotal + tax), page.px("xl", "l", "m")),
    ]
    for label, question, value, value_size in totals:
        page.text((0.55 * width, y + value_size), label, size, anchor="ls", bold=label == "Total Due")
        page.answer(
            question, (width - m - 10, y + value_size), value, value_size, anchor="rs", bold=label == "Total Due"
        )
        y += round(1.5 * value_size)

    size = page.px("s")
    y = height - m - round(4.5 * size)
    page.rule(y - size, m, width - m)
    page.text(
        (m, y),
        f"Payment terms: Net {rng.choice([15, 30, 45, 60])} days. Late payments incur a 1.5% fee.",
        size,
        fill=_GREY,
    )
    y += round(1.5 * size)
    account = f"{rng.randint(1000, 9999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
    page.text((m, y), "Remit to account:", size, fill=_GREY)
    page.answer(
        "What is the bank account number for payment?",
        (m + _font(size).getlength("Remit to account: "), y),
        account,
        size,
        fill=_GREY,
    )
    y += round(1.5 * size)
    page.text((m, y), "Thank you for your business!", size, fill=_GREY)
    return page


def _form(rng: random.Random) -> _Page:
    width, height = rng.choice([(1700, 2200), (1654, 2339)])
    page, m = _Page(width, height, rng), round(0.07 * width)
    y = m
    form_id = f"Form {rng.choice(['HR', 'MB', 'VR', 'PT'])}-{rng.randint(1000, 9999)}"
    page.answer(
        "What is the form number printed at the top of the page?",
        (width - m, y),
        form_id,
        page.px("s", "m"),
        anchor="ra",
        fill=_GREY,
    )
    y += round(0.03 * height)
    size = page.text((m, y), rng.choice(_FORMS), page.px("xl", "l"), max_width=width - 2 * m, bold=True)
    y += round(1.5 * size)
    small = page.px("s")
    page.text((m, y), "Please print clearly in ink. Fields marked * are required.", small, fill=_GREY)
    y += round(2.5 * small)

    people = rng.sample([f"{a} {b}" for a in _FIRST for b in _LAST], 2)
    first, last = people[0].split()
    fields = [
        ("Full Name", people[0]),
        ("Date of Birth", _date(rng, (1950, 2004))),
        ("Phone", _phone(rng)),
        ("Email", f"{first[0].lower()}.{last.lower()}@{rng.choice(['example.com', 'mail.org', 'post.net'])}"),
        ("Member ID", f"M-{rng.randint(100000, 999999)}"),
        ("Department", rng.choice(_DEPARTMENTS)),
        ("Start Date", _date(rng)),
        ("Street Address", f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}"),
        ("City", rng.choice(_CITIES)),
        ("Emergency Contact", people[1]),
        ("Emergency Phone", _phone(rng)),
        ("Policy Number", f"POL-{rng.randint(1000000, 9999999)}"),
    ]
    fields = fields[:2] + rng.sample(fields[2:], rng.randint(6, 10))
    column = (width - 2 * m - 40) / 2
    for row in range(0, len(fields), 2):
        pair = fields[row : row + 2]
        sizes = [page.px("xl", "l", "m", "m", "s", "s") for _ in pair]
        box = round(max(sizes) * 1.5 + 2.6 * small)
        for index, ((label, value), size) in enumerate(zip(pair, sizes)):
            x = m + index * (column + 40)
            page.draw.rectangle([x, y, x + column, y + box], outline=_RULE, width=2)
            page.text((x + 12, y + 8), f"{label}*" if row == 0 else label, small, fill=_GREY)
            page.answer(
                f'What is the value entered for the field labeled "{label}"?',
                (x + 16, y + box - 10),
                value,
                size,
                anchor="ld",
                fill=_PEN,
                max_width=column - 32,
            )
        y += box + round(0.012 * height)

    y += round(0.02 * height)
    page.text((m, y), "Employment type:", small)
    x = m + _font(small).getlength("Employment type:  ")
    checked = rng.randrange(3)
    for index, option in enumerate(("Full-time", "Part-time", "Contractor")):
        page.draw.rectangle([x, y, x + small, y + small], outline=_INK, width=2)
        if index == checked:
            page.draw.line(
                [(x + 3, y + small // 2), (x + small // 2, y + small - 3), (x + small, y - 4)], fill=_PEN, width=3
            )
        page.text((x + 1.6 * small, y), option, small)
        x += 1.6 * small + _font(small).getlength(option) + 3 * small
    y = height - m - round(3 * small)
    page.rule(y, m, m + 0.4 * width, fill=_INK)
    page.rule(y, 0.6 * width, width - m, fill=_INK)
    page.text((m, y + 10), "Signature", small, fill=_GREY)
    page.text((0.6 * width, y + 10), "Date signed", small, fill=_GREY)
    return page


def _receipt(rng: random.Random) -> _Page:
    width, height = rng.randrange(640, 761, 20), rng.randrange(1700, 2001, 50)
    page, m = _Page(width, height, rng), round(0.07 * width)
    center, inner = width / 2, width - 2 * m
    y = m
    size = page.answer(
        "What is the name of the store?",
        (center, y),
        rng.choice(_STORES),
        page.px("xl", "l"),
        anchor="ma",
        max_width=inner,
        bold=True,
    )
    y += round(1.6 * size)
    small = page.px("s", "m")
    for line in (f"{rng.randint(10, 999)} {rng.choice(_STREETS)}", rng.choice(_CITIES), f"Tel {_phone(rng)}"):
        page.text((center, y), line, small, anchor="ma", fill=_GREY, max_width=inner)
        y += round(1.4 * small)
    y += small
    size = page.px("l", "m", "s")
    page.text((m, y + size), "Date:", small, anchor="ls")
    page.answer("What is the date of the purchase?", (width - m, y + size), _date(rng), size, anchor="rs")
    y += round(1.5 * size)
    page.text((m, y), f"Time: {rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}", small)
    page.text((width - m, y), f"Reg {rng.randint(1, 9):02d}", small, anchor="ra")
    y += round(1.4 * small)
    page.text((m, y), "Transaction #", small)
    page.answer("What is the transaction number?", (width - m, y), str(rng.randint(100000, 999999)), small, anchor="ra")
    y += round(1.8 * small)
    page.rule(y, m, width - m, fill=_GREY, dash=8)
    y += small

    size = page.px("m", "s")
    subtotal = 0.0
    for item in rng.sample(_GROCERIES, rng.randint(5, 10)):
        price = rng.randint(99, 2499) / 100
        subtotal += price
        page.text((m, y), item, size, max_width=0.65 * inner)
        page.answer(f'What is the price of "{item}"?', (width - m, y), f"{price:.2f}", size, anchor="ra")
        y += round(1.5 * size)
    page.rule(y, m, width - m, fill=_GREY, dash=8)
    y += size
    tax = round(subtotal * rng.choice([0.05, 0.07, 0.08]), 2)
    for label, question, value, value_size in (
        ("SUBTOTAL", "What is the subtotal?", f"{subtotal:.2f}", size),
        ("TAX", "How much tax was charged?", f"{tax:.2f}", size),
        ("TOTAL", "What is the total amount paid?", _money(subtotal + tax), page.px("xl", "l", "m")),
    ):
        page.text((m, y + value_size), label, size, anchor="ls", bold=label == "TOTAL")
        page.answer(question, (width - m, y + value_size), value, value_size, anchor="rs", bold=label == "TOTAL")
        y += round(1.5 * value_size)
    y += small
    page.text((m, y), f"VISA **** {rng.randint(1000, 9999)}", small)
    y += round(1.4 * small)
    page.text((m, y), "AUTH CODE:", small)
    code = f"{rng.randint(10, 99)}{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(100, 999)}"
    page.answer("What is the authorization code?", (width - m, y), code, small, anchor="ra")
    y += round(2.5 * small)
    page.text((center, y), "Thank you for shopping with us!", small, anchor="ma", max_width=inner)
    y += round(2.5 * small)
    x, bottom = m + 20, min(height - m, y + 0.06 * height)
    while x < width - m - 20:  # barcode
        bar = rng.choice([2, 2, 3, 5])
        page.draw.rectangle([x, y, x + bar - 1, bottom], fill=_INK)
        x += bar + rng.choice([2, 3, 4])
    return page


def _table(rng: random.Random) -> _Page:
    width, height = rng.choice([(2200, 1700), (1700, 2200)])
    page, m = _Page(width, height, rng), round(0.06 * width)
    y = m
    year = rng.randint(2021, 2025)
    size = page.text((m, y), f"{rng.choice(_REPORTS)} {year}", page.px("xl", "l"), max_width=width - 2 * m, bold=True)
    y += round(1.5 * size)
    small = page.px("s", "m")
    page.text((m, y), "Prepared by", small, fill=_GREY)
    page.answer(
        "Who prepared this report?", (m + _font(small).getlength("Prepared by "), y), _person(rng), small, fill=_GREY
    )
    report_id = f"RPT-{year}-{rng.randint(1000, 9999)}"
    page.answer("What is the report ID?", (width - m, y), report_id, small, anchor="ra", fill=_GREY)
    y += round(2.5 * small)

    columns = rng.choice([["Q1", "Q2", "Q3", "Q4"], ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]])
    rows = rng.sample(_ROWS, rng.randint(5, 9))
    values = rng.sample(range(1000, 99999), len(rows) * len(columns))
    size = page.px("l", "m", "m", "s")
    band = round(2.0 * size)
    first = 0.22 * (width - 2 * m)
    step = (width - 2 * m - first) / (len(columns) + 1)
    header = ["", *columns, "Total"]
    table = [
        [row, *(f"{v:,}" for v in values[i * len(columns) : (i + 1) * len(columns)])] for i, row in enumerate(rows)
    ]
    for line in table:
        line.append(f"{sum(int(v.replace(',', '')) for v in line[1:]):,}")
    sums = [sum(int(line[c].replace(",", "")) for line in table) for c in range(1, len(header))]
    table.append(["Total", *(f"{v:,}" for v in sums[:-1]), ""])  # the grand total is printed below the table
    top = y
    page.draw.rectangle([m, y, width - m, y + band], fill=(226, 231, 238))
    for r, line in enumerate([header, *table]):
        for c, cell in enumerate(line):
            xy, anchor = (
                ((m + 14, y + 0.45 * size), "la") if c == 0 else ((m + first + c * step - 14, y + 0.45 * size), "ra")
            )
            if r == 0 or c == 0 or r == len(table):  # header, row labels, totals row
                page.text(xy, cell, size, anchor=anchor, bold=r in (0, len(table)))
            elif c < len(header) - 1:
                question = f'In the table, what is the value for "{line[0]}" in the column "{header[c]}"?'
                page.answer(question, xy, cell, size, anchor=anchor)
            else:
                page.answer(f'In the table, what is the total for "{line[0]}"?', xy, cell, size, anchor=anchor)
        y += band
        page.rule(y, m, width - m, width=3 if r in (0, len(table) - 1) else 1)
    for x in (m, *(m + first + c * step for c in range(len(header)))):
        page.draw.line([(x, top), (x, y)], fill=_RULE, width=2)
    y += round(0.03 * height)
    size = page.px("xl", "l", "m")
    page.text((m, y + size), "Grand total:", small, anchor="ls", bold=True)
    page.answer(
        "What is the grand total reported?",
        (m + _font(small).getlength("Grand total:") + 1.5 * size, y + size),  # apart: OCR garbles a joined box
        f"${sums[-1]:,}",
        size,
        anchor="ls",
        bold=True,
    )
    y += round(1.8 * size)
    page.text(
        (m, y),
        f"Figures in USD, unaudited. Source: regional ledgers as of {_date(rng, (year, year))}.",
        small,
        fill=_GREY,
        max_width=width - 2 * m,
    )
    return page


_BUILDERS: dict[str, Callable[[random.Random], _Page]] = {
    "invoice": _invoice,
    "form": _form,
    "receipt": _receipt,
    "table": _table,
}


def generate_documents(out_dir: str | Path, n: int = 24, *, seed: int = 0, kinds: Sequence[str] = KINDS) -> Path:
    """Render n pages (cycling over kinds) with questions; write images under out_dir/images/ and
    out_dir/qa.jsonl; return the path of qa.jsonl. Deterministic for a seed."""
    if isinstance(kinds, str):
        kinds = (kinds,)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if not kinds or any(kind not in _BUILDERS for kind in kinds):
        raise ConfigError(f"unknown document kinds {list(kinds)!r}; available: {', '.join(KINDS)}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(n):
        kind = kinds[index % len(kinds)]
        rng = random.Random(f"resgate-synthetic/{seed}/{index}")  # pages do not depend on n or on each other
        page = _BUILDERS[kind](rng)
        name = f"images/{kind}-{index:03d}.png"
        questions = page.questions()
        page.finish().save(out / name, compress_level=1)
        for number, (question, answer, text_px) in enumerate(questions):
            item = {
                "id": f"{kind}-{index:03d}-q{number}",
                "image": name,
                "question": question,
                "answers": [answer],
                "kind": kind,
                "text_px": text_px,
                "width": page.width,
                "height": page.height,
            }
            lines.append(json.dumps(item))
    path = out / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
