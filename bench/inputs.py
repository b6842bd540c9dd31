"""Input conversion (issue 18): time and peak memory to turn a 200-page PDF and a 1,000-file folder
of mixed formats into a context, as `rlm run` and the API do before anything is stored.

Each conversion runs in a fresh process (`read_path` in a child) whose peak RSS (VmHWM) is reset
after the converters are imported, so "peak" is that process's high-water mark while converting and
"growth" is that minus its RSS before reading. Fixtures are made
here (fpdf2, python-docx, python-pptx, openpyxl), never fetched. Run: `python -m bench.inputs`
(`--markdown` for the BENCHMARKS.md table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.documents import docx_bytes, pdf_bytes, pptx_bytes, xlsx_bytes

CHILD = """
import json, resource, sys, time
from rlm_worker.documents import read_path
from rlm_worker.documents import converters
import pypdf, docx, pptx, openpyxl, bs4, markdownify  # the parsers, so the baseline holds them

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to now: the peak below is the conversion's own
base = status("VmRSS")
started, cpu = time.perf_counter(), time.process_time()
converted = read_path(sys.argv[1])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
chars = sum(len(d.text) for d in converted.documents)
print(json.dumps({"seconds": seconds, "cpu": cpu, "base_kb": base, "peak_kb": status("VmHWM"),
                  "chars": chars, "documents": len(converted.documents), "skipped": len(converted.skipped)}))
"""

PARAGRAPH = (
    "Clause {n}. The lessee shall keep the premises at {street} in good repair and return them on "
    "the {day} day of the term; notices go to the address in schedule {n}. "
)


def page_text(n: int) -> str:
    return "".join(PARAGRAPH.format(n=n * 10 + i, street=f"{n} Harbour Road", day=i + 1) for i in range(12))


def make_pdf(folder: Path, pages: int = 200) -> Path:
    path = folder / "contract.pdf"
    path.write_bytes(pdf_bytes([page_text(n) for n in range(pages)]))
    return path


def make_folder(folder: Path, files: int = 1_000) -> Path:
    """1,000 files: 70% text-like (txt, md, csv, json, html, ~3 kB each), 10% PDFs (2 pages),
    10% DOCX, 5% PPTX, 5% XLSX; binary formats are copies of one file per format."""
    root = folder / "corpus"
    pdf = pdf_bytes([page_text(0), page_text(1)])
    word = docx_bytes([page_text(n) for n in range(3)])
    deck = pptx_bytes([page_text(n)[:400] for n in range(4)])
    sheet = xlsx_bytes({"Calls": [["port", "calls", "day"]] + [[f"P{i}", i, i % 28 + 1] for i in range(200)]})
    for i in range(files):
        sub = root / f"batch{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        kind = i % 20
        text = page_text(i)[:3000]
        if kind < 14:
            ext, data = [
                ("txt", text.encode()),
                ("md", f"# Note {i}\n\n{text}".encode()),
                ("csv", "\n".join(f"{i},{j},{j * i}" for j in range(150)).encode()),
                ("json", json.dumps({"id": i, "text": text}).encode()),
                ("html", f"<html><body><h1>Note {i}</h1><p>{text}</p></body></html>".encode()),
            ][kind % 5]
        else:
            ext, data = [
                ("pdf", pdf),
                ("pdf", pdf),
                ("docx", word),
                ("docx", word),
                ("pptx", deck),
                ("xlsx", sheet),
            ][kind - 14]
        (sub / f"file{i:04d}.{ext}").write_bytes(data)
    return root


def convert_in_child(path: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def measure(runs: int = 3, pages: int = 200, files: int = 1_000) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = {
            f"{pages:,}-page PDF": make_pdf(folder, pages),
            f"{files:,}-file folder": make_folder(folder, files),
        }
        for label, path in inputs.items():
            size = (
                path.stat().st_size
                if path.is_file()
                else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            )
            samples = [convert_in_child(path) for _ in range(runs)]
            seconds = [s["seconds"] for s in samples]
            results[label] = {
                "input_bytes": size,
                "seconds_median": statistics.median(seconds),
                "seconds_min": min(seconds),
                "seconds_max": max(seconds),
                "cpu_median": statistics.median(s["cpu"] for s in samples),
                "peak_rss_mb": max(s["peak_kb"] for s in samples) / 1024,
                "growth_mb": max(s["peak_kb"] - s["base_kb"] for s in samples) / 1024,
                "chars": samples[0]["chars"],
                "documents": samples[0]["documents"],
                "skipped": samples[0]["skipped"],
                "runs": runs,
            }
    return results


def markdown(results: dict[str, dict]) -> str:
    lines = [
        "| input | size | documents | characters out | time (median, min–max) | CPU (median) | peak RSS | RSS growth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['input_bytes'] / 1e6:.2f} MB | {r['documents']:,} | {r['chars']:,} | "
            f"{r['seconds_median']:.2f} s ({r['seconds_min']:.2f}–{r['seconds_max']:.2f}) | {r['cpu_median']:.2f} s | "
            f"{r['peak_rss_mb']:.0f} MB | {r['growth_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print the BENCHMARKS.md table")
    args = parser.parse_args()
    results = measure(args.runs)
    print(markdown(results) if args.markdown else json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
