"""The fit's report.html: the objective step by step, each attribute's curve, and contact
sheets of the preset before and after the fit beside the target's own training crops."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PIL import Image

from synthreid import atomic
from synthreid.fit.attributes import ATTRIBUTES
from synthreid.render.contact_sheet import compose

if TYPE_CHECKING:
    from synthreid.fit.search import Fit, FitResult


def _plots(result: FitResult, path, objective: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result.steps
    columns = min(4, max(1, len(steps)))
    rows = 1 + -(-len(steps) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows),
                                squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    top = axes[0, 0]
    top.set_visible(True)
    after = [result.start_distance]
    for step in steps:
        after.append(min(step.before, *step.distances) if step.chosen is not None
                     else step.before)
    top.plot(range(len(after)), after, marker="o")
    top.set_xlabel("step")
    top.set_ylabel(f"distance ({objective})")
    top.set_title("objective after each step")
    for ax, step in zip(axes.flat[columns:], steps):
        ax.set_visible(True)
        ax.plot(step.candidates, step.distances, marker="o")
        ax.axhline(step.before, color="grey", linestyle=":", linewidth=1)
        if step.chosen is not None:
            ax.axvline(step.chosen, color="tab:red", linewidth=1)
        ax.set_title(f"round {step.round}: {step.attribute}", fontsize=9)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=80)
    plt.close(figure)


def write_report(fit: Fit, result: FitResult) -> None:
    out = fit.out
    _plots(result, out / "curves.png", fit.config.objective)
    per_row = fit.config.images_per_character
    real = [Image.fromarray(c) for c in fit.crops[:per_row * fit.config.characters]]
    with atomic.atomic_path(out / "real.png") as tmp:
        compose([real[i:i + per_row] for i in range(0, len(real), per_row)], 64, 2).save(tmp)
    before = fit.evaluate([fit.base])[0]
    after = fit.evaluate([fit.config_for(result.values)])[0]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{result.preset_values[name]:g}</td>"
        f"<td>{result.values[name]:g}</td><td>{html.escape(ATTRIBUTES[name].meaning)}</td></tr>"
        for name in result.values)
    widest = max((len(s.candidates) for s in result.steps), default=1)
    steps = "".join(
        f"<tr><td>{s.round}</td><td>{html.escape(s.attribute)}</td><td>{s.before:.4f}</td>"
        + "".join(f"<td>{v:g}: {d:.4f}</td>" for v, d in zip(s.candidates, s.distances))
        + "<td></td>" * (widest - len(s.candidates))
        + f"<td>{'kept as it was' if s.chosen is None else f'{s.chosen:g}'}</td>"
        f"<td>{s.seconds:.0f}</td></tr>" for s in result.steps)
    config = fit.config
    page = f"""<!doctype html><meta charset="utf-8"><title>synthreid fit</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px;vertical-align:top}}
table{{border-collapse:collapse}}
</style>
<h1>Fit of {html.escape(fit.preset_name)} to {html.escape(fit.target)}</h1>
<p>Objective <b>{html.escape(config.objective)}</b> (lower is closer to the target's training
crops): {result.start_distance:.4f} for the preset, {result.distance:.4f} after the fit.
{config.characters} characters x {config.images_per_character} images per candidate (the same
people and views for every candidate), {len(fit.crops)} target training crops, seed
{config.seed}, {len(result.steps)} steps in {config.rounds} round(s), {result.minutes:.1f}
minutes of rendering and scoring{' (the time budget ended the search early)'
                                  if result.budget_reached else ''}.
The fitted generation YAML is <a href="fit.yaml">fit.yaml</a>.</p>
<h2>Fitted values</h2>
<table><tr><th>attribute</th><th>preset</th><th>fitted</th><th>meaning</th></tr>{rows}</table>
<h2>Objective per step and each attribute's curve</h2>
<p>Dotted: the distance the step started from; red: the value chosen.</p>
<img src="curves.png">
<h2>Steps</h2>
<table><tr><th>round</th><th>attribute</th><th>before</th><th colspan="{widest}">candidate:
distance</th><th>chosen</th><th>seconds</th></tr>{steps}</table>
<h2>Before, after, and the target</h2>
<table><tr><th>preset ({before['distance']:.4f})</th><th>fitted ({after['distance']:.4f})</th>
<th>target training crops</th></tr>
<tr><td><img src="evaluations/{before['sheet']}"></td><td><img src="evaluations/{after['sheet']}">
</td><td><img src="real.png"></td></tr></table>
"""
    atomic.write_text(out / "report.html", page)
