"""MLflow tracking for a training run: experiment tags, a buffered logger, the exported model.

Metrics are buffered and written to MLflow when a checkpoint is saved (and at the end), so a run
killed between checkpoints and resumed never logs a step twice and never loses one: what MLflow
holds always ends at the last checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from aunet_lab.mlflow_client import TrackingError

# Marks our experiments as model training for MLflow 3. Its 3.17 UI still opens them in the GenAI view
# unless the URL says workflowType=machine_learning, which `aunet-lab ui` prints (cli.training_view_urls).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_tags() -> dict[str, str]:
    """A new experiment's tags: model training, and the "Training curves" view (mlflow_view)."""
    from aunet_lab.training.mlflow_view import view_tag

    key, value = view_tag()
    return {**EXPERIMENT_KIND, key: value}


def experiment_id(client, name: str, uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        for key, value in experiment_tags().items():  # an experiment made by an older aunet_lab
            if key not in found.tags:
                client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=location, tags=experiment_tags())


class MetricBuffer:
    """Collects metrics by step; ``flush`` writes them to the run in batches.

    If the store cannot be reached (a tracking server gone away), ``flush`` keeps the points in a
    spill file beside the checkpoint (``spill``) and training goes on; the next flush that reaches
    the store sends them. ``flush(final=True)`` retries for ``final_wait`` seconds, then raises
    TrackingError (the points stay in the spill file, and a resumed run sends them).
    """

    def __init__(self, client, run_id: str, skip_through: int = -1, spill: Path | None = None,
                 final_wait: float = 60.0):
        self.client = client
        self.run_id = run_id
        self.pending: list = []
        self.spill = Path(spill) if spill else None
        self.final_wait = final_wait
        self.warned = False
        self._dropped: set[int] = set()
        self._keys: set[str] | None = None
        # Steps MLflow (or the spill file) already holds (a resumed run replays them from its
        # checkpoint): not logged again.
        self.skip_through = max(skip_through, self._spilled_through())

    def _spilled(self) -> list:
        from mlflow.entities import Metric

        if self.spill is None or not self.spill.is_file():
            return []
        out = []
        for number, line in enumerate(self.spill.read_text(errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                key, value, ts, step = json.loads(line)
                out.append(Metric(str(key), float(value), int(ts), int(step)))
            except (ValueError, TypeError):  # a write cut off by a kill: that point is lost, not the run
                if number not in self._dropped:
                    self._dropped.add(number)
                    print(f"warning: {self.spill}: line {number} is damaged (cut off by a kill?); dropped",
                          file=sys.stderr)
        return out

    def _spilled_through(self) -> int:
        return max((m.step for m in self._spilled()), default=-1)

    def _present(self) -> set[str]:
        """Metric keys the run (or the spill file) already holds."""
        if self._keys is None:
            self._keys = {m.key for m in self._spilled()}
            if self.skip_through >= 0:  # a resumed run: MLflow may hold them already
                try:
                    self._keys |= set(self.client.get_run(self.run_id).data.metrics)
                except Exception as err:  # unreachable store: log them (at worst twice), keep training
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
                    print(f"warning: MLflow unreachable ({first}); cannot tell which end-of-run metrics it "
                          "holds", file=sys.stderr)
        return self._keys

    def log(self, metrics: dict[str, float], step: int, once: bool = False) -> None:
        """``once``: end-of-run metrics (test), logged unless the run already has them, whatever the
        step (a run resumed at its last step replays no training but still owes its test)."""
        from mlflow.entities import Metric

        if once:
            metrics = {k: v for k, v in metrics.items() if k not in self._present()}
        elif step <= self.skip_through:
            return
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            value = float(value)
            self.pending.append(Metric(key, value, now, int(step)))

    def _send(self) -> bool:
        points = self._spilled() + self.pending
        try:
            for i in range(0, len(points), 1000):
                self.client.log_batch(self.run_id, metrics=points[i : i + 1000])
        except Exception as err:  # unreachable store: keep every point, go on training
            if self.spill is None:
                raise
            with self.spill.open("a") as fh:
                if fh.tell() and not self.spill.read_bytes().endswith(b"\n"):
                    fh.write("\n")  # a line cut off by a kill stays on its own line
                for m in self.pending:
                    fh.write(json.dumps([m.key, m.value, m.timestamp, m.step]) + "\n")
            self.pending = []
            if not self.warned:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                print(f"warning: MLflow unreachable ({first}); metrics kept in {self.spill} until it is back",
                      file=sys.stderr)
                self.warned = True
            return False
        self.pending = []
        if self.spill is not None and self.spill.is_file():
            self.spill.unlink()
            self.warned = False
        return True

    def flush(self, final: bool = False) -> None:
        if self._send() or not final:
            return
        deadline = time.monotonic() + self.final_wait
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
            if self._send():
                return
        raise TrackingError(f"MLflow unreachable at the end of the run; {len(self._spilled())} metric points "
                            f"kept in {self.spill} (a resumed run sends them)")


def log_exported_model(client, run_id: str, run_dir: Path, bpb_rows: list[dict], step: int) -> str | None:
    """Export the run's ``final.ckpt`` to ``run_dir/model`` and log that folder as the run's MLflow
    LoggedModel (an output of the run, READY, its test bits per byte as tags); returns its id. A
    model that cannot be exported (a split function not named by import path) gets the tag
    ``aunet.export`` saying why, and no logged model."""
    from aunet_lab.export import ExportError, write_export
    from aunet_lab.loaded import load

    try:
        model = load(run_dir / "final.ckpt")
        write_export(model, run_dir / "model", bpb_rows, name=run_dir.name, replace=True)
    except ExportError as err:
        client.set_tag(run_id, "aunet.export", f"not exported: {err}"[:5000])
        return None
    from mlflow.entities import LoggedModelOutput

    run = client.get_run(run_id)
    tags = {"aunet.arch": run.data.tags.get("aunet.arch", model.arch), "aunet.window": str(model.window),
            **{f"bpb.{r['split']}.{r['language']}".replace(" ", "_").replace("(", "").replace(")", ""):
               f"{r['bpb']:.6f}" for r in bpb_rows}}
    logged = client.create_logged_model(run.info.experiment_id, name=run_dir.name, source_run_id=run_id,
                                        tags=tags, model_type="aunet" if model.arch == "aunet" else "bpe")
    client.log_model_artifacts(logged.model_id, str(run_dir / "model"))
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step)])
    client.set_tag(run_id, "aunet.model_id", logged.model_id)
    return logged.model_id


def log_boundaries(client, run_id: str, dm, split: str, stages: int, step: int, levels_fn=None) -> None:
    """Where the run's split function put its boundaries on each test language: units per byte and
    the share inside grapheme clusters at each of the model's coarse stages (2..``stages``) (metrics ``test/units_per_byte/<lang>/stage<k>``,
    ``test/grapheme_cuts/<lang>/stage<k>``) and the units of a test passage (tags
    ``aunet.units_example.<lang>.stage<k>``), for the report's boundaries page. ``levels_fn``: the
    boundaries of learned chunking (models.chunking.LearnedLevels) instead of the split function's."""
    import math

    from mlflow.entities import Metric, RunTag

    from aunet_lab.data.splitting.boundary_stats import boundary_stats, example_units

    now = int(time.time() * 1000)
    metrics, tags = [], []
    for lang in dm.eval_language_order("test"):
        texts = [d["text"] for d in dm.eval_documents(lang, "test")]
        if not texts:
            continue
        stats = boundary_stats(texts, split, levels_fn)
        pairs = list(zip(stats.units_per_byte(), stats.inside_share()))[: max(0, stages - 1)]
        for k, (rate, inside) in enumerate(pairs, start=2):
            metrics.append(Metric(f"test/units_per_byte/{lang}/stage{k}", rate, now, step))
            if not math.isnan(inside):
                metrics.append(Metric(f"test/grapheme_cuts/{lang}/stage{k}", inside, now, step))
            tags.append(RunTag(f"aunet.units_example.{lang}.stage{k}", example_units(texts[0], split, k, levels_fn=levels_fn)[:500]))
    for i in range(0, len(metrics), 200):
        client.log_batch(run_id, metrics=metrics[i : i + 200])
    if tags:
        client.log_batch(run_id, tags=tags)
