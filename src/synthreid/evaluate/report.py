"""CMC tables (terminal, markdown, CSV, JSON) and CMC plots of one or several models."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from synthreid import atomic
from synthreid.evaluate.protocols import CMCResult

RANKS = (1, 5, 10, 20)
NO_VALUE = {"mAP": "–", "mINP": "–"}  # a protocol without mAP shows a dash, never 0.0


def table_rows(results: dict[str, CMCResult]) -> list[dict[str, str]]:
    rows = []
    for name, result in results.items():
        row = {"model": name}
        for k in RANKS:
            if k <= len(result.cmc):
                value = f"{100 * result.rank(k):.1f}"
                if result.cmc_std is not None:
                    value += f" ± {100 * result.cmc_std[k - 1]:.1f}"
                row[f"R{k}"] = value
        if result.mAP is not None:
            row["mAP"] = f"{100 * result.mAP:.1f}"
            row["mINP"] = f"{100 * result.mINP:.1f}"
        if result.cmc_std is not None:
            row["CMC area"] = f"{result.area:.2f}"
        rows.append(row)
    return rows


def markdown(results: dict[str, CMCResult]) -> str:
    rows = table_rows(results)
    header = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.get(k, NO_VALUE.get(k, "")) for k in header) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(results: dict[str, CMCResult]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "rank", "cmc", "cmc_std", "mAP", "mINP"])
    for name, r in results.items():
        for k, value in enumerate(r.cmc, start=1):
            std = "" if r.cmc_std is None else f"{r.cmc_std[k - 1]:.6f}"
            writer.writerow([name, k, f"{value:.6f}", std,
                             "" if r.mAP is None else f"{r.mAP:.6f}",
                             "" if r.mINP is None else f"{r.mINP:.6f}"])
    return out.getvalue()


def to_json(results: dict[str, CMCResult]) -> str:
    return json.dumps({name: r.to_record() for name, r in results.items()}, indent=1)


def plot_cmc(results: dict[str, CMCResult], path: Path, max_rank: int = 50,
             title: str = "CMC") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    gallery_size = None
    for name, r in results.items():
        ranks = range(1, min(max_rank, len(r.cmc)) + 1)
        curve = 100 * r.cmc[:len(ranks)]
        ax.plot(ranks, curve, label=name)
        if r.cmc_std is not None:
            std = 100 * r.cmc_std[:len(ranks)]
            ax.fill_between(ranks, curve - std, curve + std, alpha=0.15)
        gallery_size = r.extra.get("identities", gallery_size)
    if gallery_size:  # chance: a random ranking of a one-shot gallery of that many ids
        ranks = range(1, min(max_rank, gallery_size) + 1)
        ax.plot(ranks, [100 * k / gallery_size for k in ranks], "k--", lw=1, label="chance")
    ax.set(xlabel="rank", ylabel="matching rate (%)", title=title, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_report(results: dict[str, CMCResult], out_dir: Path, title: str = "CMC") -> dict:
    """cmc.png, cmc.md, cmc.csv and cmc.json in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"plot": plot_cmc(results, out_dir / "cmc.png", title=title)}
    for suffix, text in (("md", markdown(results)), ("csv", to_csv(results)),
                         ("json", to_json(results))):
        paths[suffix] = atomic.write_text(out_dir / f"cmc.{suffix}", text)
    return paths
