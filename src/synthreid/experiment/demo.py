"""The whole chain at a tiny size on the embedded defaults: plan a run in a SQLite database,
render it with local workers into a local folder, export it as a dataset, train a re-id model on
its training ids, and evaluate on its held-out test ids with a CMC report.

    from synthreid.experiment.demo import run_demo
    run_demo("out/demo")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthreid.config import config_from_dict, load_config
from synthreid.datasets import read_dataset
from synthreid.evaluate.features import evaluate_arrays
from synthreid.evaluate.report import markdown, write_report
from synthreid.farm.db import connect
from synthreid.farm.export import export_run
from synthreid.farm.plan import plan_run
from synthreid.farm.supervisor import render_run
from synthreid.reid.config import load_train_config
from synthreid.reid.features import dataset_features
from synthreid.reid.train import Trainer


@dataclass
class DemoResult:
    out: Path
    dataset: Path
    report: dict
    table: str


def run_demo(out: str | Path, preset: str = "IV", characters: int = 40, images: int = 6,
             epochs: int = 15, seed: int = 0, engine: str | None = None, workers: int | None = None,
             say=print) -> DemoResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_config(preset).model_dump()
    data["crop"]["height_px"] = 128  # small crops: the demo should take minutes, not hours
    if engine:
        data["render"]["engine"] = engine
    config = config_from_dict(data, "demo")
    db_url = f"sqlite:///{(out / 'jobs.db').resolve()}"
    storage = str(out / "storage")
    run = f"demo-{preset}-{characters}x{images}-seed{seed}"

    say(f"1/4 planning {characters} characters x {images} images of preset {preset}")
    plan_run(connect(db_url), run, config, characters, images, seed)
    say("2/4 rendering with local workers")
    render_run(db_url, storage, workers, run)
    dataset_dir = out / "dataset"
    if not (dataset_dir / "split.json").exists():
        say("3/4 exporting in Market-1501 layout")
        export_run(db_url, storage, run, dataset_dir)
    dataset = read_dataset("synthetic", dataset_dir)

    say(f"4/4 training a re-id model ({epochs} epochs) and evaluating on the test ids")
    train = load_train_config(recipe="modern", overrides=dict(
        data=[f"synthetic:{dataset_dir}"], out=str(out / "reid"), model={"embedding": 128},
        augment={"height": 128, "width": 64, "pad": 6}, epochs=epochs, lr=0.05,
        warmup_epochs=1, milestones=[max(epochs - 2, 1)], batch_size=32, workers=0,
        validation_repeats=5, seed=seed))
    trainer = Trainer(train, [dataset])
    trainer.open(resume=True)  # a demo run again continues (or reuses) its own training
    trainer.fit(log=lambda s: say(f"   epoch {s['epoch']}: loss {s['loss']:.3f}, validation CMC "
                                  f"area {s['validation_area']:.2f}"))
    arrays = dataset_features(str(out / "reid" / "best.pt"), dataset)
    test_ids = len(set(arrays["query_ids"].tolist()) | set(arrays["gallery_ids"].tolist()))
    results = {"Market protocol": evaluate_arrays(arrays, "market"),
               f"thesis protocol ({test_ids} ids)": evaluate_arrays(arrays, "thesis", seed=seed)}
    report = write_report(results, out / "report", title=f"synthreid demo: preset {preset}")
    table = markdown(results)
    return DemoResult(out=out, dataset=dataset_dir, report=report, table=table)
