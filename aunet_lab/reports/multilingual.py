"""The multilingual study pages: the transfer matrix (with AU-Net minus BPE), BPB against target
budget after a warm start, character-task accuracy by language, and AU-Net's diagnostics. Each
figure has a table function beside it (what the figure shows, as a pandas frame) that tests check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aunet_lab.intervals import MIN_ITEMS, accuracy_interval, items_text, seed_interval
from aunet_lab.reports.style import (ARCH_LABEL, COLOURS, LANGUAGE_COLOURS, PAGE, arch_and_style_legend, archs_in,
                                     bytes_axes, error_bars, figure, heatmap, interval_caption, interval_text,
                                     line_styles, seeds_text, with_script)


def _targets(best):
    """Cells trained on the study's axes (not the pretraining cells of a warm start)."""
    return best[best["role"] != "pretrain"] if "role" in best else best


def training_languages(best, arch: str) -> dict[str, set[str]]:
    """Each training mixture of ``arch`` and the languages it trains on."""
    rows = best[best["arch"] == arch]
    return {m: {x for lang in rows[rows["mixture"] == m]["languages"] for x in str(lang).split(",") if x}
            for m in set(rows["mixture"])}


def transfer_matrix(best, languages: list[str], arch: str, metric: str = "test/bpb") -> pd.DataFrame:
    """Test BPB of ``arch`` (or another per-language test metric, such as ``test/context_bytes``):
    one row per training mixture (single languages first, then families and a warm start's
    pretraining mixture), one column per evaluation language; each mixture's largest budget, mean
    over cells with that mixture (splits, vocabularies)."""
    rows = best[best["arch"] == arch]
    mixtures = sorted(set(rows["mixture"]), key=lambda m: (m not in languages, m))
    out = pd.DataFrame(np.nan, index=mixtures, columns=languages)
    for mixture in mixtures:
        mine = rows[rows["mixture"] == mixture]
        mine = mine[mine["bytes"] == mine["bytes"].max()] if mine["bytes"].notna().any() else mine
        for lang in languages:
            col = f"{metric}/{lang}"
            if col in mine and mine[col].notna().any():
                out.loc[mixture, lang] = mine[col].mean()
    return out


def fig_transfer(best, languages: list[str], replicates=None):
    """Heatmaps of test BPB, training mixture x evaluation language, per architecture, then AU-Net
    minus BPE for each AU-Net arm (blue: AU-Net better) with each entry's 95% Student-t interval,
    all means over the seed replicates (``seed_replicates``). Needs two training mixtures at least."""
    if best["mixture"].nunique() < 2:
        return None
    archs = archs_in(best)
    if not any(_transfer_entries(best, transfer_matrix(best, languages, a), a)[1] for a in archs):
        return None  # every cell evaluated on its own languages only: nothing transfers
    import matplotlib.pyplot as plt

    replicates = replicates or [best]
    per_seed = {a: [transfer_matrix(r, languages, a) for r in replicates] for a in archs}
    matrices = {a: sum(ms) / len(ms) for a, ms in per_seed.items()}
    diffs = {a: [m - b.reindex_like(m) for m, b in zip(per_seed[a], per_seed["bpe"])] for a in archs
             if a != "bpe" and "bpe" in per_seed}
    panels = [(ARCH_LABEL[a], matrices[a], "viridis_r", None) for a in archs]
    panels += [(f"{ARCH_LABEL[a]} minus BPE", sum(d) / len(d), "RdBu_r", _difference_labels(d))
               for a, d in diffs.items()]
    if "bpe" in matrices:
        # BPE's history in bytes shrinks where its tokenizer's tokens are short (scripts it never
        # saw): a property of BPE, shown beside the scores and not corrected.
        context = transfer_matrix(best, languages, "bpe", "test/context_bytes")
        if np.isfinite(context.to_numpy(float)).any():
            panels.append(("BPE mean history (bytes)", context, "cividis", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(PAGE[0], 4.2 * len(panels)), PAGE[1]), squeeze=False)
    fig.suptitle("Transfer: test bits per byte, training mixture (rows) x evaluation language (columns), mean over "
                 f"seeds;\nAU-Net minus BPE paired by seed, ± half its interval ({interval_caption(len(replicates))})",
                 fontsize=14)
    finite = np.concatenate([m.to_numpy().ravel() for m in matrices.values()])
    finite = finite[np.isfinite(finite)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
    for ax, (title, matrix, cmap, labels) in zip(axes[0], panels):
        values = matrix.to_numpy(float)
        fmt = {"RdBu_r": "{:+.1f}", "cividis": "{:.0f}"}.get(cmap, "{:.1f}")
        im = heatmap(ax, values, list(matrix.index), list(matrix.columns), fmt, cmap, labels=labels)
        if cmap == "viridis_r":
            im.set_clim(vmin, vmax)
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def _difference_labels(per_seed: list[pd.DataFrame]) -> list[list[str]]:
    """Each entry of a per-seed difference as its mean, and with two seeds or more ``±0.3`` below
    it (half the 95% Student-t interval over the seeds)."""
    mean = sum(per_seed) / len(per_seed)
    labels = []
    for m in mean.index:
        row = []
        for c in mean.columns:
            _, lo, hi = seed_interval([float(d.loc[m, c]) for d in per_seed])
            row.append(f"{mean.loc[m, c]:+.1f}" + (f"\n±{(hi - lo) / 2:.1f}" if np.isfinite(lo) else ""))
        labels.append(row)
    return labels


def _transfer_entries(best, matrix: pd.DataFrame, arch: str) -> tuple[list[float], list[float]]:
    """The finite entries of a transfer matrix (or a difference of two) on each row's training
    languages, and off them."""
    trained = training_languages(best, arch)
    on, off = [], []
    for m in matrix.index:
        for c in matrix.columns:
            if np.isfinite(matrix.loc[m, c]):
                (on if c in trained.get(m, {m}) else off).append(float(matrix.loc[m, c]))
    return on, off


def lowresource_curves(best) -> pd.DataFrame:
    """Per warm-started cell: architecture, target language, target bytes and the test BPB on the
    target language; plus each pretraining cell's test BPB on the same languages at 0 target bytes."""
    if "role" not in best or not (best["role"] == "pretrain").any():
        return pd.DataFrame(columns=["arch", "target", "bytes", "test_bpb"])
    rows = []
    targets = best[best["role"] != "pretrain"]
    pretrained = best[best["role"] == "pretrain"]
    for r in targets.to_dict("records"):
        for lang in [x for x in r["languages"].split(",") if x]:
            rows.append({"arch": r["arch"], "target": lang, "bytes": r["bytes"], "test_bpb": r.get(f"test/bpb/{lang}"),
                         "from": r["pretrain_cell"]})
    frame = pd.DataFrame(rows)
    zero = []
    for (arch, target), group in frame.groupby(["arch", "target"]):
        col = f"test/bpb/{target}"
        source = pretrained[pretrained["cell"].isin(set(group["from"]))]
        if col in source and source[col].notna().any():
            zero.append({"arch": arch, "target": target, "bytes": 0.0, "test_bpb": source[col].mean()})
    frame = pd.concat([frame.drop(columns="from"), pd.DataFrame(zero)], ignore_index=True)
    frame = frame.groupby(["arch", "target", "bytes"], as_index=False)["test_bpb"].mean()
    return frame.sort_values(["target", "arch", "bytes"]).reset_index(drop=True)


def fig_lowresource(best, replicates=None):
    """Target-language test BPB against target bytes per architecture (colour) and target (line
    style), each point the mean over the seed replicates with its 95% Student-t interval."""
    curves = lowresource_curves(best)
    if curves.empty:
        return None
    reps = [lowresource_curves(r) for r in (replicates or [best])]
    n = len(reps)
    from matplotlib.lines import Line2D

    fig, ax = figure("Warm start: target-language test BPB against target bytes\n(dotted: the pretrained model "
                     f"before any target bytes; mean over seeds, {interval_caption(n)})")
    styles = line_styles(curves["target"])
    for target, ls in styles.items():
        for arch in archs_in(curves):
            rows = curves[(curves["arch"] == arch) & (curves["target"] == target)]
            tuned = rows[rows["bytes"] > 0].sort_values("bytes")
            stats = [seed_interval([_at(c, arch, target, b) for c in reps]) for b in tuned["bytes"]]
            ax.errorbar(tuned["bytes"], [s[0] for s in stats], yerr=error_bars(stats), marker="o", ls=ls,
                        color=COLOURS[arch], capsize=3)
            if (rows["bytes"] == 0).any():
                ax.axhline(np.mean([_at(c, arch, target, 0.0) for c in reps]), color=COLOURS[arch], ls=":", lw=1)
    pretrained = [Line2D([], [], color="grey", ls=":", lw=1, label="pretrained only")] \
        if (curves["bytes"] == 0).any() else []
    arch_and_style_legend(ax, archs_in(curves), styles, "target", pretrained)
    return bytes_axes(ax, "target-language training bytes", "target-language test bits per byte")


def _at(curves: pd.DataFrame, arch: str, target: str, nbytes: float) -> float:
    rows = curves[(curves["arch"] == arch) & (curves["target"] == target) & (curves["bytes"] == nbytes)]
    return float(rows["test_bpb"].iloc[0]) if len(rows) else np.nan


def _in_language(records: list[dict], lang: str, arch: str) -> list[dict]:
    """The runs of ``arch`` that speak for a language: those trained on it (the largest budget among
    them), else every run of ``arch`` (the language seen only at evaluation)."""
    mine = [r for r in records if r["arch"] == arch]
    trained = [r for r in mine if lang in str(r.get("languages", "")).split(",")]
    if not trained:
        return mine
    top = max(r["bytes"] or 0 for r in trained)
    return [r for r in trained if (r["bytes"] or 0) == top]


def _eval_values(best, prefix: str):
    """(record, language, rest of the key, value) of every ``<prefix><lang>/...`` metric, taken from
    the runs that speak for each language and architecture (see ``_in_language``)."""
    records = best.to_dict("records")
    langs = {(r["arch"], k[len(prefix):].split("/", 1)[0]) for r in records for k, v in r.items()
             if k.startswith(prefix) and v == v and v is not None}
    for arch, lang in sorted(langs):
        for r in _in_language(records, lang, arch):
            for key, value in r.items():
                if key.startswith(f"{prefix}{lang}/") and value == value and value is not None:
                    yield r, lang, key[len(prefix) + len(lang) + 1:], value


def chars_table(best) -> pd.DataFrame:
    """Character-task accuracy (and chance) per architecture, evaluation language and task: the mean
    over the cells trained on that language at their largest budget (all cells if none was)."""
    rows = []
    for r, lang, task, value in _eval_values(best, "eval/chars/"):
        rows.append({"arch": r["arch"], "language": lang, "task": task, "accuracy": value,
                     "chance": r.get(f"eval/chars_chance/{lang}/{task}"),
                     "items": r.get(f"eval/chars_items/{lang}/{task}", np.nan)})
    if not rows:
        return pd.DataFrame(columns=["arch", "language", "task", "accuracy", "chance", "items", "cells"])
    frame = pd.DataFrame(rows)
    return frame.groupby(["arch", "language", "task"], as_index=False).agg(
        accuracy=("accuracy", "mean"), chance=("chance", "mean"), items=("items", "sum"),
        cells=("accuracy", "size"))


def pooled_interval(table: pd.DataFrame) -> tuple[float, float, float]:
    """Accuracy pooled over the rows' items, with its 95% Wilson interval (items as independent
    trials; ``intervals.accuracy_interval``: none below MIN_ITEMS items); NaN interval where the item
    counts are unknown."""
    items = table["items"].to_numpy(float)
    if not len(items) or not np.isfinite(items).all() or items.sum() <= 0:
        return float(table["accuracy"].mean()), np.nan, np.nan
    n = int(round(items.sum()))
    k = int(round(float((table["accuracy"].to_numpy(float) * items).sum())))
    return accuracy_interval(k, n)


def fig_chars(best):
    table = chars_table(best)
    if table.empty:
        return None
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=PAGE)
    fig.suptitle("Character tasks: log-likelihood ranking accuracy, pooled over items with 95% Wilson intervals\n"
                 f"(none below {MIN_ITEMS} items; n: items under each bar group; dashed: chance)", fontsize=13)
    archs = archs_in(table)
    width = 0.8 / len(archs)
    for ax, by in ((a1, "language"), (a2, "task")):
        keys = sorted(set(table[by]))
        for k, arch in enumerate(archs):
            mine = table[table["arch"] == arch]
            stats = [pooled_interval(mine[mine[by] == x]) if (mine[by] == x).any() else (np.nan,) * 3 for x in keys]
            ax.bar(np.arange(len(keys)) + k * width, [p for p, _, _ in stats], width, color=COLOURS[arch],
                   label=ARCH_LABEL[arch], yerr=error_bars(stats), capsize=2, error_kw={"lw": 0.8})
        chance = table.groupby(by)["chance"].mean()
        for i, x in enumerate(keys):
            if chance.get(x) == chance.get(x):
                ax.hlines(chance[x], i - width / 2, i + 0.8 - width / 2, colors="black", linestyles="--", lw=1)
        items = table.groupby([by, "arch"])["items"].sum().groupby(level=0).min()
        labels = [f"{x}\nn={int(items[x])}" if items.get(x) == items.get(x) else x for x in keys]
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, labels, rotation=45 if by == "task" else 0,
                      ha="right" if by == "task" else "center", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"by {'evaluation language' if by == 'language' else 'task'} (mean over the other)")
    a1.set_ylabel("accuracy")
    a2.set_ylabel("accuracy")
    a1.legend()
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def diagnostics_split(best) -> str | None:
    """The one split function the diagnostics page shows when AU-Net cells use several (offsets
    within a word mean something else under each): ``word`` if present."""
    splits = sorted(set(best[best["arch"] != "bpe"]["split"]))
    if len(splits) < 2:
        return None
    return "word" if "word" in splits else splits[0]


def diagnostics_table(best, by: str) -> pd.DataFrame:
    """AU-Net bits per byte by ``by`` (offset, level or script) per evaluation language, from the
    cells trained on that language at their largest budget (all AU-Net cells if none was), of one
    split function (``diagnostics_split``)."""
    rows = []
    aunet = best[best["arch"] != "bpe"]
    split = diagnostics_split(best)
    if split is not None:
        aunet = aunet[aunet["split"] == split]
    for r, lang, rest, value in _eval_values(aunet, "eval/diagnostics/"):
        kind, what = rest.split("/", 1)
        if kind == by:
            rows.append({"language": lang, by: int(what) if by != "script" else what, "bits_per_byte": value})
    if not rows:
        return pd.DataFrame(columns=["language", by, "bits_per_byte"])
    return pd.DataFrame(rows).groupby(["language", by], as_index=False)["bits_per_byte"].mean()


def diagnostics_over_seeds(replicates, by: str) -> pd.DataFrame:
    """``diagnostics_table`` with, per (language, ``by``), the mean over the seed replicates and its
    95% Student-t interval (``low``/``high``; NaN with one seed)."""
    tables = [diagnostics_table(r, by) for r in replicates]
    if tables[0].empty:
        return tables[0].assign(low=np.nan, high=np.nan)
    merged = pd.concat([t.assign(replicate=k) for k, t in enumerate(tables)])
    rows = []
    for (lang, key), group in merged.groupby(["language", by]):
        mean, low, high = seed_interval(group["bits_per_byte"].to_numpy(float))
        rows.append({"language": lang, by: key, "bits_per_byte": mean, "low": low, "high": high})
    return pd.DataFrame(rows)


def fig_diagnostics(best, replicates=None):
    replicates = replicates or [best]
    tables = {by: diagnostics_over_seeds(replicates, by) for by in ("offset", "level", "script")}
    if all(t.empty for t in tables.values()):
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=PAGE)
    split = diagnostics_split(best)
    n = len(replicates)
    fig.suptitle("AU-Net diagnostics: test bits per byte by offset within the word, by boundary level "
                 f"and by script\n(mean over seeds, {interval_caption(n)}"
                 + (f"; split function: {split})" if split else ")"),
                 fontsize=13)
    languages = sorted(set().union(*(set(t["language"]) for t in tables.values())))
    colour = {lang: LANGUAGE_COLOURS[k % len(LANGUAGE_COLOURS)] for k, lang in enumerate(languages)}
    offset = tables["offset"]
    for lang in sorted(set(offset["language"])):
        rows = offset[offset["language"] == lang].sort_values("offset")
        axes[0].errorbar(rows["offset"], rows["bits_per_byte"], yerr=error_bars(rows[["bits_per_byte", "low", "high"]]
                                                                                .itertuples(index=False)),
                         marker="o", color=colour[lang], capsize=3, label=lang)
    axes[0].set_xlabel("byte offset within the word (last: that or later)")
    axes[0].legend(fontsize=8, title="evaluation language")
    for ax, by, xlabel in ((axes[1], "level", "boundary level the byte starts (0: inside a word)"),
                           (axes[2], "script", "script of the byte's character")):
        table = tables[by]
        if table.empty:
            ax.text(0.5, 0.5, f"no {by} diagnostics logged", ha="center", va="center", transform=ax.transAxes)
            continue
        keys = sorted(set(table[by]), key=str)
        langs = sorted(set(table["language"]))
        width = 0.8 / len(langs)
        for k, lang in enumerate(langs):
            mine = table[table["language"] == lang].set_index(by)
            stats = [tuple(mine.loc[x, ["bits_per_byte", "low", "high"]]) if x in mine.index else (np.nan,) * 3
                     for x in keys]
            ax.bar(np.arange(len(keys)) + k * width, [s[0] for s in stats], width, color=colour[lang],
                   yerr=error_bars(stats), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=45 if by == "script" else 0, fontsize=8)
        ax.set_xlabel(xlabel)
    for ax in axes:
        ax.set_ylabel("test bits per byte")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig



def seed_replicates(best, runs=None) -> list[pd.DataFrame]:
    """The study once per seed index every cell has: replicate 0 is ``best`` (each cell's best
    trial), replicate s holds each cell's s-th finished repeat run (trial order) in place of its best
    trial's metrics. Seeds pair across architectures and cells by index. [best] alone where ``runs``
    (the runs frame) is not given or a cell has one seed."""
    n = int(best["seeds"].min()) if "seeds" in best and len(best) else 1
    if runs is None or runs.empty or n < 2:
        return [best]
    done = runs[(runs["role"] == "repeat") & (runs["status"] == "finished") & runs["val_objective"].notna()]
    repeats = {cell: rows.sort_values("trial") for cell, rows in done.groupby("cell")}
    metrics = [c for c in best.columns if c in runs.columns and
               (c.startswith(("test/", "val/", "eval/", "aunet/")) or c in ("test_bpb", "val_bpb", "val_objective"))]
    out = [best]
    for s in range(1, n):
        rep = best.copy()
        for col in metrics:
            rep[col] = [repeats[cell].iloc[s - 1][col] for cell in best["cell"]]
        rep["test_bpb_mean"] = rep["test_bpb"].astype(float)
        out.append(rep)
    return out


def _over_seeds(values: list[float], fmt: str = "{:+.3f}") -> str:
    """``95% CI lo to hi`` over per-seed replicates, or why there is none."""
    _, lo, hi = seed_interval(values)
    return interval_text(float(np.mean(values)), lo, hi, len(values), fmt)


def findings(best, languages: list[str], runs=None) -> list[str]:
    """The multilingual pages in sentences: transfer on and off the training languages, the warm
    start's gain per target, character-task accuracy against chance, and where AU-Net's bits go.
    Each carries its 95% interval over the seeds (``runs``: the runs frame, for the repeat seeds'
    metrics; see ``seed_replicates``) and the seed count, or why it has none."""
    out = []
    reps = seed_replicates(best, runs)
    n = len(reps)
    targets = _targets(best)
    if best["mixture"].nunique() >= 2 and "bpe" in set(best["arch"]):
        for arch in [a for a in archs_in(best) if a != "bpe"]:
            on, off = [], []
            for r in reps:
                diff = transfer_matrix(r, languages, arch) - transfer_matrix(r, languages, "bpe")
                entries = _transfer_entries(r, diff, arch)
                on.append(entries[0])
                off.append(entries[1])
            if off[0]:
                parts = []
                if on[0]:
                    parts.append(f"{np.mean([np.mean(v) for v in on]):+.3f} on the training languages ({len(on[0])} "
                                 f"cells; {_over_seeds([np.mean(v) for v in on])})")
                parts.append(f"{np.mean([np.mean(v) for v in off]):+.3f} on the other languages ({len(off[0])} cells; "
                             f"{_over_seeds([np.mean(v) for v in off])})")
                out.append(f"Transfer: {ARCH_LABEL[arch]} minus BPE test BPB, mean " + "; ".join(parts) + ".")
    history = {a: transfer_matrix(targets, languages, a, "test/context_bytes") for a in archs_in(targets)}
    if "bpe" in history and len(history) > 1:
        on, off = _transfer_entries(targets, history["bpe"], "bpe")
        others = [v for a, m in history.items() if a != "bpe" for v in sum(_transfer_entries(targets, m, a), [])]
        if on and off and others:
            out.append(f"Mean history per scored byte: BPE {np.mean(on):.0f} bytes on its training languages, "
                       f"{np.mean(off):.0f} on the others; the byte-level arms {np.mean(others):.0f} (context is "
                       "matched in bytes of training text; BPE's shrinks where its tokens are short; a property of "
                       "the tokenizer and the test text, not a trained outcome: no interval).")
    aunet = targets[targets["arch"] != "bpe"]
    if aunet["split"].nunique() > 1:
        for arch in archs_in(aunet):
            rows = aunet[aunet["arch"] == arch]
            # Chosen on validation, reported on test (choosing on test would flatter the winner).
            rows = rows[rows["val_objective"].notna()]
            if rows.empty:
                continue
            best_split = rows.loc[rows.groupby("mixture")["val_objective"].idxmin()]
            parts = []
            for r in best_split.itertuples():
                values = [float(rep.loc[r.Index, "test_bpb"]) for rep in reps]
                parts.append(f"{with_script(r.mixture)} {r.split} {np.mean(values):.3f}"
                             + (f" ({_over_seeds(values, '{:.3f}')})" if n > 1 else ""))
            out.append(f"Best {ARCH_LABEL[arch]} split function by training mixture (chosen on validation; "
                       "test BPB): " + "; ".join(parts) + ("." if n > 1 else f" ({seeds_text(n)}: no interval)."))
    curves = [lowresource_curves(r) for r in reps]
    for target in sorted(set(curves[0]["target"])):
        parts = []
        for arch in archs_in(curves[0]):
            per_seed = []
            for c in curves:
                rows = c[(c["arch"] == arch) & (c["target"] == target)].sort_values("bytes")
                zero, tuned = rows[rows["bytes"] == 0], rows[rows["bytes"] > 0]
                if len(tuned):
                    per_seed.append((zero["test_bpb"].iloc[0] if len(zero) else np.nan, tuned["test_bpb"].iloc[-1],
                                     tuned["bytes"].iloc[-1]))
            if len(per_seed) != n:
                continue
            zero, tuned, nbytes = (np.array(v, float) for v in zip(*per_seed))
            if np.isfinite(zero).all():
                parts.append(f"{ARCH_LABEL[arch]} {zero.mean():.3f} pretrained only, {tuned.mean():.3f} after "
                             f"{nbytes[0]:,.0f} bytes (gain {np.mean(zero - tuned):.3f}; "
                             f"{_over_seeds(zero - tuned, '{:.3f}')})")
            else:
                parts.append(f"{ARCH_LABEL[arch]} {tuned.mean():.3f} after {nbytes[0]:,.0f} bytes "
                             f"({_over_seeds(tuned, '{:.3f}')})")
        if parts:
            out.append(f"Warm start on {target} (test BPB on {target}): " + "; ".join(parts) + ".")
    chars = chars_table(best)
    if not chars.empty:
        parts = []
        for a in archs_in(chars):
            mine = chars[chars["arch"] == a]
            acc, lo, hi = pooled_interval(mine)
            parts.append(f"{ARCH_LABEL[a]} {acc:.3f}"
                         + (f" (95% CI {lo:.3f} to {hi:.3f}, {items_text(int(mine['items'].sum()))})" if lo == lo
                            else f" ({items_text(int(mine['items'].sum()))})" if mine["items"].notna().all()
                            else " (item counts unknown: no interval)"))
        langs = chars["language"].nunique()
        out.append(f"Character tasks (log-likelihood ranking, pooled over {chars['task'].nunique()} tasks and "
                   f"{langs} language{'s' if langs != 1 else ''}): " + ", ".join(parts)
                   + f"; chance {chars['chance'].mean():.3f}. Wilson intervals over the items scored by each cell's "
                   f"best trial ({seeds_text(n)} per cell; the seed-to-seed spread is not in them).")
    gaps = []
    for r in reps:
        offsets = diagnostics_table(r, "offset")
        if not offsets.empty:
            gaps.append((offsets[offsets["offset"] == 0]["bits_per_byte"].mean(),
                         offsets[offsets["offset"] > 0]["bits_per_byte"].mean()))
    if len(gaps) == n and gaps:
        first, later = (np.array(v) for v in zip(*gaps))
        out.append(f"AU-Net diagnostics: {first.mean():.2f} bits on a word's first byte against {later.mean():.2f} on "
                   f"the bytes after it (mean over languages and offsets; difference {np.mean(first - later):+.2f}, "
                   f"{_over_seeds(first - later, '{:+.2f}')}).")
    return out
