"""This project's reading of a benchmark: its targets judged from the figures, the quality table, the plots.

The measuring is the SDK's (``edgecrop.apps.bench``, typed results); what the figures are held against, and
the pictures, are this project's business and live here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecrop.apps.bench import STAGES, TIMED_INPUT, markdown

TARGETS = {  # name -> (description, lower is better?, bound)
    "int8_vs_teacher_speedup": ("int8 inference at least 50x faster than the teacher", False, 50.0),
    "total_over_reduced_decode": ("12 MP JPEG whole crop <= 1.5x its reduced-size decode", True, 1.5),
    "smartcrop_over_edgecrop": ("12 MP JPEG whole crop >= 30x faster than smartcrop.py", False, 30.0),
    "search_share": ("crop search <= 1% of the total (12 MP JPEG)", True, 0.01),
    "cli_cold_start_s": ("CLI cold start on one photo < 1 s", True, 1.0),
    "cli_peak_rss_mb": ("CLI peak RSS on the 12 MP JPEG < 200 MB", True, 200.0),
}


def _inference(results: dict, name: str, threads: str) -> float | None:
    row = results["models"].get(name, {}).get(threads)
    return row["stages_ms"]["inference"]["median_ms"] if row else None


def check_targets(results: dict) -> list[dict]:
    """The targets, each with the measured value and whether it is met (None: not measured)."""
    big = results["inputs"].get("4000x3000.jpg", {})
    values: dict[str, float | None] = {
        "total_over_reduced_decode": big.get("total_over_reduced_decode"),
        "smartcrop_over_edgecrop": big.get("smartcrop_over_edgecrop"),
        "search_share": big.get("search_share"),
        "cli_cold_start_s": results["cli"]["seconds"],
        "cli_peak_rss_mb": results["cli"]["peak_rss_mb"],
        "int8_vs_teacher_speedup": None,
    }
    teacher = next((n for n in results["models"] if n.startswith("teacher")), None)
    if teacher and "edgecrop_int8" in results["models"]:
        speedups = []
        for t in results["models"]["edgecrop_int8"]:
            slow, fast = _inference(results, teacher, t), _inference(results, "edgecrop_int8", t)
            if slow and fast:
                speedups.append(slow / fast)
        values["int8_vs_teacher_speedup"] = min(speedups) if speedups else None
    rows = []
    for key, (text, lower_better, bound) in TARGETS.items():
        v = values[key]
        met = None if v is None else (v <= bound if lower_better else v >= bound)
        rows.append({"target": key, "description": text, "value": v, "bound": bound, "met": met})
    return rows


def full_markdown(r: dict) -> str:
    """The SDK's tables, then quality beside speed, then the targets."""
    lines = [markdown(r).rstrip("\n")]
    if r.get("quality"):
        lines += ["", "## Quality on OSIE validation (100 photos) beside speed", ""]
        lines += quality_table(r)
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in r["targets"]:
        v = "not measured" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"| {t['description']} | {v} | {'n/a' if t['met'] is None else 'yes' if t['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def quality_table(r: dict) -> list[str]:
    keys = ("NSS", "CC", "AUC-Judd", "sAUC")
    lines = [
        "| model | " + " | ".join(keys) + " | fixations kept by crops (mean of 4 ratios) | whole crop, 1 thread (ms) |",
        "|---|" + "---|" * (len(keys) + 2),
    ]
    for name, q in r["quality"].items():
        metrics = " | ".join(f"{q[k]:.3f}" if k in q else "" for k in keys)
        latency = latency_ms(r, name)
        shown = f"{latency:.1f}" if np.isfinite(latency) else ""
        lines.append(f"| {name} | {metrics} | {q['crop_share']:.3f} | {shown} |")
    return lines


def latency_ms(r: dict, name: str) -> float:
    """Whole-crop time of a model or peer at 1 thread on the timed input (ms)."""
    if name in r["models"]:
        return r["models"][name]["1"]["stages_ms"]["total"]["median_ms"]
    timed_input = r["inputs"][TIMED_INPUT]
    if name == "smartcrop.py" and timed_input["smartcrop_ms"]:
        return timed_input["smartcrop_ms"]["median_ms"]
    if name == "centre crop":
        return timed_input["decode_reduced_ms"]
    return float("nan")


def plots(r: dict, folder: Path, stem: str) -> list[Path]:
    """Per-stage latency bars (labelled with the measured total, not the sum of stage medians) and, with
    quality, a quality-vs-latency scatter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = [(f"{n} ({t}T)", row["stages_ms"]) for n, by in r["models"].items() for t, row in by.items()]
    rows += [(f"default on {n}", row["stages_ms"]) for n, row in r["inputs"].items() if n != TIMED_INPUT]
    fast = [row for row in rows if row[1]["total"]["median_ms"] < 50]
    slow = [row for row in rows if row[1]["total"]["median_ms"] >= 50]
    panels = [p for p in (fast, slow) if p]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 0.42 * len(rows) + 2.5), height_ratios=[len(p) for p in panels], squeeze=False
    )
    for ax, panel in zip(axes[:, 0], panels):
        left = np.zeros(len(panel))
        for stage in STAGES:
            v = np.array([s[stage]["median_ms"] for _, s in panel])
            ax.barh([n for n, _ in panel], v, left=left, label=stage)
            left += v
        totals = [s["total"]["median_ms"] for _, s in panel]
        for y, (end, total) in enumerate(zip(left, totals)):
            ax.text(end, y, f" {total:.1f} ms", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(left.max(), max(totals)) * 1.2)
        ax.set_xlabel("ms per photo: stage medians stacked, measured total median at the bar's end")
    axes[0, 0].set_title(f"edgecrop stages on {r['machine']['cpu']} ({r['date']})", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    written.append(folder / f"{stem}-stages.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    if r.get("quality"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (name, q) in enumerate(r["quality"].items()):
            x = latency_ms(r, name)
            if np.isfinite(x):
                ax.scatter(x, q["crop_share"], s=40)
                dy = (4, -11, 15)[i % 3]  # neighbours (the float variants) get different offsets
                ax.annotate(name, (x, q["crop_share"]), fontsize=8, xytext=(5, dy), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"whole crop of an {TIMED_INPUT} photo, 1 thread (ms, log scale)")
        ax.set_ylabel("share of human fixations kept by the crops")
        ax.set_title("quality vs latency on OSIE validation (up and left is better)", fontsize=9)
        fig.tight_layout()
        written.append(folder / f"{stem}-quality_vs_latency.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written
