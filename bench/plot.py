#!/usr/bin/env python3
"""Renders the measured tables of docs/performance.md as SVG bar charts in
docs/img/ (no plotting library needed). Run after a benchmark updated the doc:
    python3 bench/plot.py
"""
import html
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
OUT = ROOT / "docs" / "img"


def section(text, heading):
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""


def tables(text):
    """Yields each markdown table as (header, rows) of stripped cells."""
    block = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            if len(block) > 2:
                yield block[0], block[2:]
            block = []


def number(cell):
    m = re.search(r"[\d,]+(?:\.\d+)?", cell.replace("**", ""))
    return float(m.group(0).replace(",", "")) if m else None


def bar_chart(path, title, unit, bars, log=False):
    """bars: (label, value, colour); horizontal bars, values printed at the end."""
    import math
    width, left, row = 860, 330, 26
    height = 50 + row * len(bars) + 20
    top = max(v for _, v, _ in bars) or 1
    scale = (lambda v: math.log10(max(v, 1)) / math.log10(max(top, 10))) if log else (lambda v: v / top)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{html.escape(title)}</text>']
    for i, (label, value, colour) in enumerate(bars):
        y = 40 + i * row
        w = max(1.0, scale(value) * (width - left - 110))
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}">{value:,.1f} {html.escape(unit)}</text>')
    if log:
        out.append(f'<text x="{left}" y="{height - 6}" fill="#666">logarithmic scale</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


def producer(text):
    for header, rows in tables(section(text, "Producer ingest")):
        if "msgs/s" not in header:
            continue
        i = header.index("msgs/s")
        bars = []
        for r in rows:
            v = number(r[i])
            if v is None:
                continue
            label = r[0] if len(r[0]) < 48 else r[0][:45] + "..."
            colour = "#9aa5b1" if "baseline" in r[0] else "#e8a33d" if "ProducerPerformance" in r[0] else "#3b82c4"
            bars.append((label, v, colour))
        bar_chart(OUT / "producer-throughput.svg", "Producer throughput (messages/s)", "msg/s", bars, log=True)
        return


def metrics(text):
    for header, rows in tables(section(text, "Metrics")):
        if "p99 1× (ms)" in header:
            a, b = header.index("p99 1× (ms)"), header.index("p99 10× (ms)")
            bars = []
            for r in rows:
                bars.append((f"{r[0]} {r[1]} 1x", number(r[a]), "#3b82c4"))
                bars.append((f"{r[0]} {r[1]} 10x", number(r[b]), "#e8a33d"))
            bar_chart(OUT / "metrics-p99.svg", "Analytics views: p99 latency (ms), default cache", "ms", bars)
            return


def consumer(text):
    """Consumer throughput (empty and preloaded store) against the bulk-insert
    ceilings of the same run (raw documents; raw + gate documents)."""
    want = {"consumer throughput into the store (empty store)": "#3b82c4",
            "consumer throughput into the preloaded store": "#6aa7dc",
            "ceiling: bulk insert of the raw + gate documents": "#e8a33d",
            "ceiling: bulk insert of the raw documents": "#f2c98a",
            # tables written before the store moved to PostgreSQL
            "consumer throughput into the store": "#3b82c4",
            "ceiling: bulk insert of the same documents": "#e8a33d"}
    bars = []
    for header, rows in tables(section(text, "Consumer")):
        if header[:2] not in (["measure", "value"], ["measure (preloaded store)", "value"]):
            continue
        bars += [(r[0], number(r[1]), want[r[0]]) for r in rows
                 if r[0] in want and number(r[1]) is not None]
    if bars:
        order = list(want)
        bars.sort(key=lambda b: order.index(b[0]))
        bar_chart(OUT / "consumer-throughput.svg", "Consumer vs bulk-insert ceilings (messages/s)",
                  "msg/s", bars)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text()
    producer(text)
    metrics(text)
    consumer(text)


if __name__ == "__main__":
    main()
