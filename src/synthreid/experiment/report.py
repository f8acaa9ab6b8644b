"""The experiment's report: `report.md` (images beside it) and a self-contained `report.html`
(images embedded as base64, so the one file can be mailed), built from one list of blocks.

For each thesis table our numbers (mean ± spread over the protocol's repeats) stand beside the
thesis'; one CMC plot per table with the chance line; a contact sheet per dataset (generated,
refined, real training images); validation curves per model; and every stage's settings key,
wall time and the versions that ran it.
"""

from __future__ import annotations

import base64
import csv
import html
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from synthreid import atomic
from synthreid.evaluate.protocols import CMCResult
from synthreid.evaluate.report import plot_cmc
from synthreid.experiment.config import unseeded
from synthreid.experiment.stages import Stage
from synthreid.experiment.thesis import RANKS, THESIS_CMC
from synthreid.render.contact_sheet import compose


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Picture:
    path: Path
    caption: str


Block = tuple[str, str] | Table | Picture  # ("h2" | "p" | "pre", text), a table or a picture


def _cell(result: CMCResult, rank: int) -> str:
    if rank > len(result.cmc):
        return ""
    text = f"{100 * result.rank(rank):.1f}"
    return text if result.cmc_std is None else f"{text} ± {100 * result.cmc_std[rank - 1]:.1f}"


def _thesis(name: str) -> str:
    numbers = THESIS_CMC.get(name)
    return " / ".join(f"{v:.1f}" for v in numbers) if numbers else "-"


def _map(result: CMCResult) -> str:
    """A protocol without mAP (single-shot draws) shows a dash, never 0.0."""
    return "–" if result.mAP is None else f"{100 * result.mAP:.1f}"


# The thesis' figures came from Open-ReID's CUHK03 CMC on CUHK03's 100 test ids.
THESIS_PROTOCOL = "cuhk03-openreid"
THESIS_COLUMN = "thesis, CUHK03 (Open-ReID CMC): R1 / R5 / R10 / R20"
CMC_AREA = ("CMC area: the sum of the CMC over all ranks (1 to the number of ids drawn), the "
            "thesis' validation score; chance is (ids + 1) / 2, a perfect model scores the "
            "number of ids.")


def _on_cuhk03(results: dict[str, dict], stage_name: str) -> bool:
    return str(results[stage_name].get("dataset_name", "")).startswith("cuhk03")


GROUPS = (  # (what the table is, the thesis figure it mirrors, which evaluate stages, models)
    ("Generated data only, on the real test ids", "Table 3.2", "real",
     lambda m: m.startswith("generated-")),
    ("Refined data only, on the real test ids", "Table 3.3", "real",
     lambda m: m.startswith("refined-")),
    ("Real, finetuned and mixed, on the real test ids", "Table 3.4", "real",
     lambda m: m == "real" or m.startswith(("finetuned-", "mixed-"))),
    ("Each synthetic model on its own export's test ids", "Figure A.1", "own", lambda m: True),
    ("Every model on the second real dataset", "Figure A.2", "second", lambda m: True),
)


BASELINE = "hsv"  # evaluate-hsv-on-real: the colour-histogram descriptor, no model
TEST_IDS = {"real": "real", "own": "own export", "second": "second real"}


@dataclass
class Scored:
    """A model's results on one set of test ids, by protocol."""
    results: dict[str, CMCResult]
    on_cuhk03: bool  # the evaluated set is CUHK03 (the thesis' figures are comparable)


def _evaluated_model(stage: Stage, on: str) -> str:
    """The model an `evaluate-MODEL-on-ON` stage scores."""
    return stage.name.removeprefix("evaluate-").removesuffix(f"-on-{on}")


def _scores(stages: list[Stage], results: dict[str, dict], on: str) -> dict[str, Scored]:
    """{model: its results} of the evaluate stages on `on`."""
    found = {}
    for stage in stages:
        if stage.kind == "evaluate" and stage.settings["on"] == on and stage.name in results:
            model = _evaluated_model(stage, on)
            found[model] = Scored({protocol: CMCResult.from_record(record) for protocol, record
                                   in results[stage.name]["scores"].items()},
                                  _on_cuhk03(results, stage.name))
    return found


def build_blocks(stages: list[Stage], results: dict[str, dict], out: Path,
                 config_text: str) -> list[Block]:
    figures = out / "report-figures"
    figures.mkdir(parents=True, exist_ok=True)
    blocks: list[Block] = []
    standard_rows, listed = [], set()
    for number, (what, figure, on, wanted) in enumerate(GROUPS, start=1):
        title = f"{what} (thesis {figure})"
        every = _scores(stages, results, on)
        # The experiment's seed's models; their other training seeds have a table of their own.
        scores = {m: s for m, s in every.items()
                  if wanted(m) and m != BASELINE and unseeded(m)[1] is None}
        if scores and BASELINE in every:  # the no-learning baseline leads each table
            scores = {BASELINE: every[BASELINE], **scores}
        if not scores:
            continue
        thesis_results = {m: s.results["thesis"] for m, s in scores.items()}
        identities = next(iter(thesis_results.values())).extra.get("identities", 0)
        header = ["model"] + [f"R{k}" for k in RANKS] + ["CMC area"]
        rows = [["chance"] + [f"{100 * k / identities:.1f}" if k <= identities else ""
                              for k in RANKS]
                + [f"{(identities + 1) / 2:.1f}" if identities else ""]]
        for model, result in thesis_results.items():
            rows.append([model] + [_cell(result, k) for k in RANKS] + [f"{result.area:.1f}"])
        if on == "real":
            header.append(THESIS_COLUMN)
            rows[0].append(_thesis("chance"))
            for row in rows[1:]:
                row.append(_thesis(row[0]))
        if on == "own":  # the export's standard protocol too: all queries, with mAP
            header += ["mAP (market)", "queries (market)"]
            rows[0] += ["", ""]
            for row, scored in zip(rows[1:], scores.values()):
                market = scored.results.get("market")
                row += [_map(market), str(market.queries)] if market else ["–", "–"]
        first = next(iter(thesis_results.values())).extra
        cameras = ("queries from one camera, gallery from another" if first.get("cameras") ==
                   "apart" else "any two cameras (pseudo-cameras)")
        blocks += [("h2", title), Table(title, header, rows),
                   ("p", f"Thesis protocol: {identities} ids, one query and one gallery image "
                         f"each ({cameras}); mean ± sample standard deviation over "
                         f"{first.get('repeats')} draws of ids, of one trained model; ties "
                         f"count against the match.")]
        if not any(isinstance(b, tuple) and b[1] == CMC_AREA for b in blocks):
            blocks.append(("p", CMC_AREA))
        if on == "real" and not any(s.on_cuhk03 for s in scores.values()):
            blocks.append(("p", "The thesis column holds the thesis' figures on CUHK03 (Open-ReID's "
                                "CMC, 100 test ids), not on this dataset: they are there for "
                                "shape, not for equality."))
        picture = plot_cmc(thesis_results, figures / f"cmc-{number}.png", max_rank=50,
                           title=figure)
        blocks.append(Picture(picture, f"CMC, {what.lower()} ({figure})"))
        for model, scored in scores.items():
            for protocol, result in scored.results.items():
                if protocol != "thesis" and (model, on, protocol) not in listed:
                    listed.add((model, on, protocol))
                    same = protocol == THESIS_PROTOCOL and scored.on_cuhk03 and on == "real"
                    standard_rows.append([model, TEST_IDS[on], protocol]
                                         + [_cell(result, k) for k in RANKS]
                                         + [_map(result), _thesis(model) if same else ""])
    if standard_rows:
        title = ("Standard protocols (all queries, same-camera matches removed) and the "
                 "comparisons asked for")
        header = ["model", "test ids", "protocol"] + [f"R{k}" for k in RANKS] + ["mAP"]
        if any(row[-1] for row in standard_rows):  # CUHK03 under the thesis' own protocol
            header.append("thesis, same protocol: R1 / R5 / R10 / R20")
        else:
            standard_rows = [row[:-1] for row in standard_rows]
        blocks += [("h2", title), Table(title, header, standard_rows)]
    blocks += _seed_table(stages, results)
    blocks += _contact_sheets(stages, results, figures)
    blocks += _attribute_statistics(stages, results)
    blocks += _retrieval_strips(stages, results, figures)
    blocks += _refiner_checkpoints(stages, results, figures)
    curves = _validation_curves(stages, results, figures / "validation.png")
    if curves:
        blocks += [("h2", "Validation and training curves (Appendix C)"),
                   Picture(curves, "validation CMC area, training loss and accuracy per epoch, "
                                   "every model")]
    rows = []
    for stage in stages:
        record = stage.record() if stage.done else None
        rows.append([stage.name, stage.kind, stage.key,
                     f"{record['wall_s']:.1f}" if record else "not run",
                     record["finished"] if record else ""])
    total = sum(stage.record()["wall_s"] for stage in stages if stage.done)
    blocks += [("h2", "Stages"), Table("Stages", ["stage", "kind", "key", "wall s (last run)",
                                                  "finished"], rows),
               ("p", f"Wall time of all stages: {total / 60:.1f} min (each stage's time is that "
                     f"of the run that finished it)."),
               ("h2", "Versions"),
               ("p", "As each stage recorded them when it ran (code version: of the code that "
                     "computes that kind of stage)."),
               Table("Versions", ["stage", "code version", "packages"], _recorded_versions(stages)),
               ("h2", "Configuration"), ("pre", config_text)]
    generated = _generation_as_run(stages)
    if generated:
        blocks += [("p", "Generation as it ran (each preset's own engine and samples where the "
                         "configuration leaves them unset):"),
                   Table("Generation as it ran", ["set", "engine", "samples", "denoise",
                                                  "crop height px", "characters",
                                                  "images each", "seed"], generated)]
    return blocks


def _generation_as_run(stages: list[Stage]) -> list[list[str]]:
    rows = []
    for stage in stages:
        if stage.kind != "generate":
            continue
        preset, settings = stage.settings["preset"], stage.settings
        render = preset["render"]
        rows.append([stage.name.removeprefix("generate-"), render["engine"],
                     str(render["samples"]), "yes" if render.get("denoise") else "no",
                     str(preset["crop"]["height_px"]), str(settings["characters"]),
                     str(settings["images"]), str(settings["seed"])])
    return rows


def _recorded_versions(stages: list[Stage]) -> list[list[str]]:
    rows = []
    for stage in stages:
        if stage.done:
            record = stage.record()
            packages = ", ".join(f"{k} {v}" for k, v in record.get("versions", {}).items())
            rows.append([stage.name, str(record.get("code_version", 1)), packages])
    return rows


def _sample_grid(spec: str, path: Path, people: int = 12) -> Path | None:
    """Training images of the first `people` ids, two each (columns: people)."""
    from synthreid.datasets import open_dataset

    dataset = open_dataset(spec, check_images=False)
    by_id: dict[int, list[Path]] = {}
    for record in sorted(dataset.train, key=lambda r: (r.pid, r.camid, str(r.path))):
        by_id.setdefault(record.pid, []).append(record.path)
    chosen = [paths[:1] + paths[-1:] for paths in list(by_id.values())[:people]]
    if not chosen:
        return None
    cell_h, cell_w = 128, 64
    canvas = Image.new("RGB", (len(chosen) * (cell_w + 4), 2 * (cell_h + 4)), "white")
    for x, paths in enumerate(chosen):
        for y, image_path in enumerate(paths):
            with Image.open(image_path) as image:
                tile = image.convert("RGB").resize((cell_w, cell_h), Image.BICUBIC)
            canvas.paste(tile, (x * (cell_w + 4), y * (cell_h + 4)))
    with atomic.atomic_path(path) as tmp:
        canvas.save(tmp, "PNG")
    return path


def _contact_sheets(stages: list[Stage], results: dict[str, dict], figures: Path) -> list[Block]:
    sheets: list[Block] = []
    for stage in stages:
        if stage.kind in ("generate", "refine") and (results.get(stage.name) or {}).get(
                "dataset"):
            name = stage.name.replace("generate-", "generated-").replace("refine-", "refined-")
            sheet = _sample_grid(results[stage.name]["dataset"], figures / f"sheet-{name}.png")
            if sheet:
                sheets.append(Picture(sheet, f"{name}: training images, two per person"))
    real = next((s for s in stages if s.kind == "model" and s.settings["data"] == "real"), None)
    if real is not None and real.settings.get("real"):
        sheet = _sample_grid(real.settings["real"]["spec"], figures / "sheet-real.png")
        if sheet:
            sheets.append(Picture(sheet, "real: training images, two per person"))
    return [("h2", "Contact sheets (Appendix B)")] + sheets if sheets else []


def _retrieval_strips(stages: list[Stage], results: dict[str, dict],
                      figures: Path) -> list[Block]:
    """Per model, a few fixed real test queries and what it ranks first."""
    blocks: list[Block] = []
    for stage in stages:
        record = results.get(stage.name)
        if stage.kind != "evaluate" or stage.settings["on"] != "real" or not record \
                or not record.get("ranked"):
            continue
        model = _evaluated_model(stage, "real")
        path = _draw_strips(record["ranked"], figures / f"ranked-{model}.png")
        blocks.append(Picture(path, f"{model}: real test queries (left) and its top "
                                    f"{len(record['ranked'][0]['ranked'])}, green: the same "
                                    f"person"))
    if not blocks:
        return []
    return [("h2", "Ranked retrieval on the real test ids"),
            ("p", "The same queries for every model, spread over the test ids; the gallery "
                  "ranked as the Market protocol ranks it (the query's own-camera images of "
                  "its person left out); a frame marks the true person.")] + blocks


def _draw_strips(ranked: list[dict], path: Path, height: int = 96) -> Path:
    from PIL import ImageDraw

    def thumb(source: str, frame: tuple[int, int, int] | None) -> Image.Image:
        with Image.open(source) as image:
            picture = image.convert("RGB")
        picture = picture.resize((max(1, round(picture.width * height / picture.height)),
                                  height))
        if frame is not None:
            ImageDraw.Draw(picture).rectangle([0, 0, picture.width - 1, picture.height - 1],
                                              outline=frame, width=4)
        return picture

    rows = []
    for entry in ranked:
        row = [thumb(entry["query"], None)]
        row += [thumb(source, (40, 170, 60) if same else (200, 50, 50))
                for source, same in entry["ranked"]]
        rows.append(row)
    sheet = compose(rows, height, 4)
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp)
    return path


def _attribute_statistics(stages: list[Stage], results: dict[str, dict]) -> list[Block]:
    """Who and what each generated set holds, from its export's metadata.csv."""
    rows = []
    for stage in stages:
        if stage.kind != "generate" or stage.name not in results:
            continue
        path = Path(results[stage.name]["dataset"].removeprefix("synthetic:")) / "metadata.csv"
        if path.exists():
            rows.append([stage.name.removeprefix("generate-")] + _describe_set(path))
    if not rows:
        return []
    header = ["set", "images", "people", "female %", "age (mean)", "height m (mean)", "skirt %",
              "textured shirt %", "with an accessory %", "most common hair",
              "camera polar deg (mean ± sd)", "focal mm (mean)"]
    return [("h2", "What the generated sets hold (from each export's metadata.csv)"),
            Table("Generated sets: attribute statistics", header, rows),
            ("p", "People: one row per character (its first image); images: every image. "
                  "Polar angle from the zenith, 90 = eye level.")]


def _describe_set(path: Path) -> list[str]:
    import statistics
    from collections import Counter

    with path.open(newline="") as handle:
        images = list(csv.DictReader(handle))
    people = list({row["pid"]: row for row in reversed(images)}.values())

    def share(rows: list[dict], test) -> str:
        return f"{100 * sum(1 for r in rows if test(r)) / max(1, len(rows)):.0f}"

    def mean(rows: list[dict], column: str) -> float:
        return statistics.fmean(float(r[column]) for r in rows) if rows else 0.0

    polar = [float(r["camera_polar_deg"]) for r in images]
    spread = statistics.stdev(polar) if len(polar) > 1 else 0.0
    hair = Counter(r["hair"] for r in people).most_common(1)
    return [str(len(images)), str(len(people)), share(people, lambda r: r["female"] == "True"),
            f"{mean(people, 'age_years'):.0f}", f"{mean(people, 'height_m'):.2f}",
            share(people, lambda r: r["lower"] == "skirt"),
            share(people, lambda r: bool(r["shirt_texture"])),
            share(people, lambda r: bool(r["accessories"].strip())),
            hair[0][0] if hair else "",
            f"{statistics.fmean(polar):.0f} ± {spread:.0f}",
            f"{mean(images, 'focal_mm'):.0f}"]


def _mean_sd(values: list[float], digits: int) -> str:
    """"mean ± sample standard deviation" of values over seeds; "–" for fewer than two."""
    import statistics

    if len(values) < 2:
        return "–"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _seed_table(stages: list[Stage], results: dict[str, dict]) -> list[Block]:
    """Each model trained with every training seed (`reid.seeds`): the thesis protocol's R1
    and CMC area per seed, and their mean ± sample standard deviation over the seeds."""
    by_model: dict[tuple[str, str], list[tuple[int, CMCResult]]] = {}
    for stage in stages:
        if stage.kind != "evaluate" or stage.name not in results or not stage.inputs:
            continue
        on = stage.settings["on"]
        model, _ = unseeded(_evaluated_model(stage, on))
        scores = results[stage.name]["scores"]
        if "thesis" in scores:
            by_model.setdefault((model, on), []).append(
                (stage.inputs[0].settings["seed"], CMCResult.from_record(scores["thesis"])))
    rows = []
    for (model, on), seeded_results in by_model.items():
        if len(seeded_results) < 2:
            continue
        seeded_results.sort(key=lambda pair: pair[0])
        r1 = [100 * result.rank(1) for _, result in seeded_results]
        area = [result.area for _, result in seeded_results]
        rows.append([model, TEST_IDS[on], ", ".join(str(seed) for seed, _ in seeded_results),
                     " / ".join(f"{v:.1f}" for v in r1),
                     _mean_sd(r1, 1),
                     " / ".join(f"{v:.1f}" for v in area),
                     _mean_sd(area, 1)])
    if not rows:
        return []
    title = "Training seeds: how far one seed moves a row"
    header = ["model", "test ids", "seeds", "R1 per seed", "R1 over seeds", "CMC area per seed",
              "CMC area over seeds"]
    refiner_seeds = {s.settings["seed"] for s in stages if s.kind == "refine"}
    data = ("the same renders, each refined row's images from refiners trained with that seed "
            "too" if len(refiner_seeds) > 1 else
            "the same data (renders and refiners keep the experiment's seed)")
    return [("h2", title), Table(title, header, rows),
            ("p", f"Each model trained again with each seed on {data}, scored by the thesis "
                  "protocol; mean ± "
                  "sample standard deviation over the seeds, each seed's value being the mean "
                  "over the protocol's draws. The tables above show the experiment's seed. Two "
                  "rows closer than these spreads are not told apart by this experiment.")]


def _refiner_checkpoints(stages: list[Stage], results: dict[str, dict],
                         figures: Path) -> list[Block]:
    """Identity and realism at every checkpoint of every refiner, and the one each used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks: list[Block] = []
    rows = []
    by_seed: dict[str, list[tuple[int, dict | None]]] = {}  # refiner -> (seed, chosen)
    for stage in stages:
        result = results.get(stage.name, {})
        if stage.kind != "refine" or not result.get("checkpoints"):
            continue
        with open(result["checkpoints"]) as handle:
            logged = list(csv.DictReader(handle))
        unrefined = next(r for r in logged if r["unrefined"] == "True")
        trained = [r for r in logged if r["unrefined"] != "True"]
        chosen = (result.get("choice") or {}).get("chosen")
        name = stage.name.removeprefix("refine-")
        by_seed.setdefault(unseeded(name)[0], []).append((stage.settings["seed"], chosen))
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
        steps = [int(r["iteration"]) for r in trained]
        for key, label in (("identity_refined", "refined vs refined"),
                           ("identity_cross", "refined vs unrefined")):
            left.plot(steps, [float(r[key]) for r in trained], marker=".", label=label)
        left.axhline(float(unrefined["identity_refined"]), color="grey", ls="--",
                     label="unrefined")
        left.set(xlabel="iteration", ylabel="identity rank-1 (%)", title=f"{name}: identity")
        right.plot(steps, [float(r["realism"]) for r in trained], marker=".", color="C2")
        right.axhline(float(unrefined["realism"]), color="grey", ls="--")
        right.set(xlabel="iteration", ylabel="distance to the target (1: unrefined)",
                  title=f"{name}: realism")
        for axis in (left, right):
            axis.grid(alpha=0.3)
            if chosen:
                axis.axvline(chosen["iteration"], color="black", lw=0.8)
        left.legend(fontsize=7)
        fig.tight_layout()
        path = figures / f"refiner-{name}.png"
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        blocks.append(Picture(path, f"{name}: identity and realism per checkpoint (the vertical "
                                    f"line: the checkpoint used)"))
        rows.append([name, f"{float(unrefined['identity_refined']):.1f}",
                     f"{float(unrefined['realism']):.3f}",
                     str(chosen["iteration"]) if chosen else "none kept identity",
                     f"{chosen['identity_refined']:.1f}" if chosen else "–",
                     f"{chosen['identity_cross']:.1f}" if chosen else "–",
                     f"{chosen['realism']:.3f}" if chosen else "–"])
    if not rows:
        return []
    title = "Refiners: identity kept and realism gained, per checkpoint"
    header = ["refiner", "unrefined identity R1", "unrefined realism", "checkpoint used",
              "identity R1 (refined vs refined)", "identity R1 (refined vs unrefined)",
              "realism"]
    return [("h2", title), Table(title, header, rows),
            ("p", "Identity: rank-1 of a small re-id judge trained on the unrefined generated "
                  "training ids, on held-out generated ids (every probe image a query "
                  "against the others). Realism: `synthreid fit`'s distance to the real "
                  "training images, as a ratio to the unrefined images' (1; lower is closer). "
                  "The checkpoint used is the most realistic within the margin of the "
                  "unrefined identity; one above 1 retouched the images more than it "
                  "refined them.")] + _refiner_seed_table(by_seed) + blocks


def _refiner_seed_table(by_seed: dict[str, list[tuple[int, dict | None]]]) -> list[Block]:
    """Per refiner trained with several seeds (`refiners.per_seed`): the chosen checkpoint's
    identity and realism per seed, and their mean ± sample standard deviation."""
    rows = []
    for name, seeded_choices in by_seed.items():
        if len(seeded_choices) < 2:
            continue
        seeded_choices.sort(key=lambda pair: pair[0])
        chosen = [c for _, c in seeded_choices if c]
        identity = [c["identity_refined"] for c in chosen]
        realism = [c["realism"] for c in chosen]
        rows.append([name, ", ".join(str(seed) for seed, _ in seeded_choices),
                     f"{len(chosen)} of {len(seeded_choices)}",
                     " / ".join(f"{c['identity_refined']:.1f}" if c else "–"
                                for _, c in seeded_choices), _mean_sd(identity, 1),
                     " / ".join(f"{c['realism']:.3f}" if c else "–"
                                for _, c in seeded_choices), _mean_sd(realism, 3)])
    if not rows:
        return []
    title = "Refiner seeds: the checkpoint used, per seed"
    header = ["refiner", "seeds", "kept identity", "identity R1 per seed",
              "identity R1 over seeds", "realism per seed", "realism over seeds"]
    return [Table(title, header, rows),
            ("p", "Each refiner trained again with each seed on the same renders; mean ± "
                  "sample standard deviation over the seeds whose refiner kept identity.")]


def _validation_curves(stages: list[Stage], results: dict[str, dict], path: Path) -> Path | None:
    """Per model and epoch: the validation CMC area, the training loss and accuracy (log.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = {}
    for stage in stages:
        if stage.kind == "model" and stage.name in results:
            with open(results[stage.name]["log"]) as handle:
                logs[stage.name.removeprefix("model-")] = list(csv.DictReader(handle))
    if not logs:
        return None
    panels = (("validation_area", "validation CMC area"), ("loss", "training loss"),
              ("accuracy", "training accuracy"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
    for axis, (column, label) in zip(axes, panels):
        for name, rows in logs.items():
            axis.plot([int(r["epoch"]) + 1 for r in rows], [float(r[column]) for r in rows],
                      marker=".", label=name)
        axis.set(xlabel="epoch", ylabel=label, title=f"{label} per epoch")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def to_markdown(blocks: list[Block], title: str, out: Path) -> str:
    lines = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Table):
            lines += ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
            lines += ["| " + " | ".join(row) + " |" for row in block.rows]
        elif isinstance(block, Picture):
            lines.append(f"![{block.caption}]({block.path.relative_to(out)})")
        elif block[0] == "pre":
            lines += ["```", block[1], "```"]
        else:
            lines.append(f"## {block[1]}" if block[0] == "h2" else block[1])
        lines.append("")
    return "\n".join(lines)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td:not(:first-child){text-align:right}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}figcaption{color:#555;font-size:.9em}"""


def to_html(blocks: list[Block], title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            parts.append(f"<table data-title='{html.escape(block.title)}'><thead><tr>{head}"
                         f"</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Picture):
            data = base64.b64encode(block.path.read_bytes()).decode()
            parts.append(f"<figure><img alt='{html.escape(block.caption)}' "
                         f"src='data:image/png;base64,{data}'><figcaption>"
                         f"{html.escape(block.caption)}</figcaption></figure>")
        elif block[0] == "pre":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        else:
            tag = "h2" if block[0] == "h2" else "p"
            parts.append(f"<{tag}>{html.escape(block[1])}</{tag}>")
    return "\n".join(parts + ["</body></html>"])


RECORD_TABLES = ("Stages", "Versions", "Generation as it ran",
                 "Generated sets: attribute statistics")  # how it ran, not what it scored


def write_experiment_report(stages: list[Stage], results: dict[str, dict], out: Path,
                            config_text: str, title: str = "synthreid experiment",
                            left_out: dict[str, str] | None = None) -> dict:
    """report.md, report.html, and summary.md (the result tables alone, as the demo prints);
    `left_out`: stages not run, with why (their rows are missing from every table)."""
    blocks = build_blocks(stages, results, out, config_text)
    if left_out:
        blocks[0:0] = [("p", "Left out: " + "; ".join(
            f"{name} ({why})" for name, why in left_out.items()) + ".")]
    tables = [b for b in blocks if isinstance(b, Table) and b.title not in RECORD_TABLES]
    summary = "\n".join(f"{t.title}\n\n" + to_markdown([t], "", out).split("\n", 2)[2]
                        for t in tables)
    return {"md": atomic.write_text(out / "report.md", to_markdown(blocks, title, out)),
            "html": atomic.write_text(out / "report.html", to_html(blocks, title)),
            "summary": atomic.write_text(out / "summary.md", summary)}
