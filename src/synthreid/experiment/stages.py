"""Stages as artefacts: each stage's output is a folder named by a hash of its settings and of
its inputs' keys, finished when its `stage.json` exists (written last, atomically).

A rerun skips finished stages; a killed stage runs again in the same folder, where its own
resume (re-id and refiner checkpoints, the job database, files already written) continues; a
changed setting changes the key of that stage and of everything downstream, and only those run.

A stage's key also holds the version of the code that computes it (`code_version`): a fix that
changes what a kind of stage computes bumps its number here, so stale results are computed
again instead of reused. Version 1, the code from before versions were kept, adds nothing to the
key, so the stages it made keep their keys until their code changes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from synthreid import atomic

MARKER = "stage.json"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("synthreid", "torch", "bpy", "anny", "numpy", "mediapipe"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


# Bump the number of what a change alters; never lower one. History:
#   evaluate 2: the thesis protocol keeps real cameras apart; sample standard deviations
#   model 2: mixed epochs are one pass over the real set; validation keeps real cameras apart;
#            a step milestone past the last epoch is refused
#   refine ptgan 2: no unmasked identity term; refine cut 2: PatchNCE layers by role
#   refine 3 (every method): the checkpoint that keeps identity and is most realistic, not the
#            last
#   evaluate 3: ranked retrieval lists of a few fixed queries kept with the scores
#   refine 4 (every method): identity scored with every probe image as a query; realism is
#            `synthreid fit`'s distance relative to the unrefined images
#   refine 5: training (`refiner-M`, which keeps the numbers above) and applying (`refine`) are
#            stages of their own; crops are translated at their own aspect ratio, not squeezed
#            to the refiner's size and back
#   model 3, evaluate 4: features (validation each epoch, scores) in fp32 on every machine,
#            not in bf16 where the hardware has it
CODE_VERSIONS: dict[str, int] = {"generate": 1, "masks": 1, "refiner-cyclegan": 4,
                                 "refiner-ptgan": 4, "refiner-cut": 4, "refiner-spgan": 4,
                                 "refine": 5, "model": 3, "evaluate": 4}


def code_version(kind: str, settings: dict[str, Any]) -> int:
    if kind == "refiner":
        return CODE_VERSIONS[f"refiner-{settings['method']}"]
    return CODE_VERSIONS[kind]


def stage_key(kind: str, settings: dict[str, Any], inputs: list[str]) -> str:
    identity: dict[str, Any] = {"kind": kind, "settings": settings, "inputs": inputs}
    version = code_version(kind, settings)
    if version > 1:
        identity["code_version"] = version
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Stage:
    name: str  # e.g. "generate-IV", "model-refined-IV-cyclegan"
    kind: str  # generate, masks, refine, model, evaluate
    settings: dict[str, Any]
    inputs: list[Stage] = field(default_factory=list)
    key: str = ""
    folder: Path = Path()

    def place(self, root: Path) -> Stage:
        self.key = stage_key(self.kind, self.settings, [s.key for s in self.inputs])
        self.folder = root / "stages" / f"{self.name}-{self.key}"
        return self

    @property
    def done(self) -> bool:
        return (self.folder / MARKER).is_file()

    def record(self) -> dict[str, Any]:
        return json.loads((self.folder / MARKER).read_text())

    def log(self, line: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "log.txt", "a") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


def run_stage(stage: Stage, work: Callable[[Stage], dict[str, Any]]) -> dict[str, Any]:
    """`work(stage)` fills `stage.folder` and returns what later stages and the report need;
    it is called only when the stage is not finished, and must resume from what it finds."""
    if stage.done:
        return stage.record()["result"]
    stage.folder.mkdir(parents=True, exist_ok=True)
    stage.log(f"start {stage.name} ({stage.kind}, key {stage.key})")
    start = time.perf_counter()
    result = work(stage)
    wall = time.perf_counter() - start
    record = {"name": stage.name, "kind": stage.kind, "key": stage.key,
              "settings": stage.settings, "inputs": {s.name: s.key for s in stage.inputs},
              "wall_s": round(wall, 2), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
              "code_version": code_version(stage.kind, stage.settings), "versions": versions(),
              "result": result}
    atomic.write_text(stage.folder / MARKER, json.dumps(record, indent=1, default=str))
    stage.log(f"done in {wall:.1f} s")
    return result
