"""The four page layouts of the synthetic documents: invoice, form, receipt and table."""

from __future__ import annotations

import random

from .page_kit import (
    _ACCENT,
    _CITIES,
    _COMPANY_A,
    _COMPANY_B,
    _DEPARTMENTS,
    _FIRST,
    _FORMS,
    _GREY,
    _GROCERIES,
    _INK,
    _LAST,
    _PEN,
    _PRODUCTS,
    _REPORTS,
    _ROWS,
    _RULE,
    _STORES,
    _STREETS,
    _date,
    _font,
    _money,
    _Page,
    _person,
    _phone,
)

__all__ = ["invoice", "form", "receipt", "table"]


def invoice(rng: random.Random) -> _Page:
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


def form(rng: random.Random) -> _Page:
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


def receipt(rng: random.Random) -> _Page:
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


def table(rng: random.Random) -> _Page:
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
