"""The "Training curves" view that every aunet_lab experiment carries for MLflow's UI.

MLflow 3.17 lays out a run's metric charts in sections named by the metric's prefix, alphabetically:
``aunet/``, ``compute/`` and ``data/`` come before ``train/`` and ``val/``. Its UI keeps saved and
shared views as experiment tags (``mlflow.sharedViewState.<key>``: a name and the UI state, zlib
deflated and base64 encoded); a URL with ``viewStateShareKey=<key>`` opens one. Ours puts train loss
and validation BPB in a first section, then the other sections in the order a researcher reads them.
"""

from __future__ import annotations

import base64
import json
import time
import zlib

VIEW_KEY = "aunetTraining"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "Training curves"
FIRST_CHARTS = ("train/loss", "val/bpb")
SECTION_ORDER = ("train", "val", "val/bpb", "test", "throughput", "compute", "data", "aunet",
                 "Model metrics", "System metrics")


def _line_chart(key: str, section: str) -> dict:
    return {"uuid": f"aunet-{key.replace('/', '-')}", "type": "LINE", "runsCountToCompare": 10,
            "metricSectionId": section, "deleted": False, "isGenerated": False, "displayName": key,
            "metricKey": key, "lineSmoothness": 0, "xAxisScaleType": "linear", "scaleType": "linear",
            "range": {}, "xAxisKey": "step", "selectedXAxisMetricKey": "", "yAxisKey": "metric",
            "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True,
            "useGlobalLineSmoothing": True}


def view_state() -> dict:
    """The UI state: a first section with the two curves; the UI adds every other metric's chart to
    the section named by its prefix."""
    first = {"uuid": "aunet-first", "name": VIEW_NAME, "display": True, "isReordered": True, "deleted": False,
             "isGenerated": False}
    sections = [first] + [{"uuid": f"aunet-section-{i}", "name": name, "display": True, "isReordered": False,
                           "deleted": False, "isGenerated": True} for i, name in enumerate(SECTION_ORDER)]
    return {"compareRunCharts": [_line_chart(key, first["uuid"]) for key in FIRST_CHARTS],
            "compareRunSections": sections, "isAccordionReordered": True, "hideEmptyCharts": True,
            "runsHiddenMode": "FIRST_10_RUNS"}


def view_tag(now_ms: int | None = None) -> tuple[str, str]:
    """(tag key, tag value) of the view, in the encoding MLflow's UI writes and reads."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    state = "deflate;" + base64.b64encode(zlib.compress(json.dumps(view_state()).encode())).decode()
    return VIEW_TAG, json.dumps({"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms, "state": state})


def read_view(value: str) -> dict:
    """The UI state held in a view tag's value (the inverse of ``view_tag``)."""
    encoded = json.loads(value)["state"].split(";", 1)[1]
    return json.loads(zlib.decompress(base64.b64decode(encoded)))


def experiment_urls(base: str, experiment_id: str) -> dict[str, str]:
    """The experiment's runs table and its training curves, both in the Model training view (MLflow
    3.17 opens the GenAI view unless the URL says ``workflowType=machine_learning``)."""
    page = f"{base}/#/experiments/{experiment_id}/runs"
    return {"runs": f"{page}?workflowType=machine_learning",
            "charts": f"{page}?viewStateShareKey={VIEW_KEY}&compareRunsMode=CHART&workflowType=machine_learning"}
