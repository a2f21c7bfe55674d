"""The paper's numbers beside ours, and each of its conclusions marked held or not held.

The runner's ``REPORT.md`` is built from the tables the notebooks write
(``results/<profile>/tables/*.csv``); the same functions are called in the notebooks.

A conclusion is a signed difference that the paper claims is positive (``A > B``) or
not negative (``A ≥ B``), paired by replicate (and input combination where several
apply). We report its mean ± standard error (SE, std/√n over the pairs) and a
verdict: *held* when the mean has the paper's sign, *significant* when it is more than
two SE away from zero.

Examples
--------
>>> verdict([0.02, 0.03, 0.04])
'held (significant)'
>>> verdict([-0.01, 0.02, -0.02])
'not held'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .paper import PUBLISHED, side_by_side, summary
from .starting_runs import STARTING_MODEL_ROW


def _stats(diffs: Sequence[float]) -> tuple[float, float, int]:
    d = np.asarray(diffs, np.float64)
    d = d[np.isfinite(d)]
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return (float(d.mean()) if d.size else float("nan")), se, int(d.size)


def verdict(diffs: Sequence[float], strict: bool = True) -> str:
    """``held``/``not held`` (+ ``(significant)`` beyond 2 SE) for a claimed positive
    difference (``strict``: ``> 0``; else ``≥ 0``, where a mean of exactly 0 holds)."""
    mean, se, n = _stats(diffs)
    if n == 0:
        return "not measured"
    held = mean > 0 if strict else mean >= 0
    text = "held" if held else "not held"
    if np.isfinite(se) and abs(mean) > 2 * se and mean != 0:
        text += " (significant)"
    return text


def _paired(table: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> pd.Series:
    """Per-replicate ``miou`` of (method, combination) ``a`` minus ``b``."""
    def pick(key):
        rows = table[(table["method"] == key[0]) & (table["combination"] == key[1])]
        return rows.set_index("replicate")["miou"]

    return (pick(a) - pick(b)).dropna()


def _paper_diff(pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> float:
    t = PUBLISHED["table1"]
    diffs = [t[a][0] - t[b][0] for a, b in pairs if a in t and b in t]
    return float(np.mean(diffs)) if diffs else float("nan")


def _row(claim: str, pairs, table, strict: bool = True, note: str = "") -> dict:
    diffs = pd.concat([_paired(table, a, b) for a, b in pairs]) if pairs else pd.Series([])
    mean, se, n = _stats(diffs)
    return {"claim": claim, "paper": _paper_diff(pairs), "ours": mean, "se": se, "n": n,
            "verdict": verdict(diffs, strict), "note": note}


def table1_conclusions(table: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 claims tested on :func:`cellcutter_nb.experiments.paper.table1`.

    Returns
    -------
    DataFrame
        ``claim``, ``paper`` (the same mean difference from the paper's Table 1),
        ``ours`` (mean paired difference), ``se``, ``n`` (pairs), ``verdict``, ``note``.
    """
    w, wo = "CNN w/ mask", "CNN w/o mask"
    combos = list(dict.fromkeys(table.loc[table["method"] == w, "combination"]))
    rows = [
        _row("mask ≥ no mask", [((w, c), (wo, c)) for c in combos], table, strict=False,
             note="all combinations"),
        _row("+Nuc ≥ without", [((w, c + "+Nuc"), (w, c)) for c in ("FL", "BF", "FL+BF")
                                if c in combos and c + "+Nuc" in combos], table, strict=False,
             note="FL, BF, FL+BF, with mask"),
        _row("FL > BF", [((w, a), (w, b)) for a, b in (("FL", "BF"), ("FL+Nuc", "BF+Nuc"))
                         if a in combos and b in combos], table, note="with/without Nuc"),
        _row("CNN > CellProfiler", [((w, "FL"), ("CellProfiler", "FL"))], table,
             note="FL, CellProfiler's own threshold"),
        _row("CNN > CellProfiler given the same mask",
             [((w, "FL"), ("CellProfiler (same mask)", "FL"))], table,
             note="not in the paper: a stronger baseline"),
        _row("CNN > position only", [((w, c), ("position only", "FL")) for c in combos
                                     if c in ("FL", "FL+Nuc")], table,
             note="not in the paper: did training learn junctions? (FL, FL+Nuc)"),
    ]
    return pd.DataFrame(rows + _starting_model_claims(table))


def _starting_model_claims(table: pd.DataFrame) -> list[dict]:
    """The CNN claims again for :data:`STARTING_MODEL_ROW` (FL, FL+Nuc), when present."""
    s = STARTING_MODEL_ROW
    combos = [c for c in dict.fromkeys(table.loc[table["method"] == s, "combination"])
              if c in ("FL", "FL+Nuc")]
    if not combos:
        return []
    note = f"not in the paper: the shipped starting model fine-tuned ({', '.join(combos)})"
    return [_row(f"CNN from starting model > {ref}", [((s, c), (ref, "FL")) for c in combos],
                 table, note=note)
            for ref in ("CellProfiler", "CellProfiler (same mask)", "position only")]


def cross_modality_conclusions(agree: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """FL/BF agreement: at least the lower of the two accuracies; higher with Nuc."""
    w = table[table["method"] == "CNN w/ mask"].set_index(["combination", "replicate"])["miou"]
    a = agree.set_index(["pair", "replicate"])["miou"]
    rows = []
    for pair, (fl, bf) in {"FL vs BF": ("FL", "BF"),
                           "FL+Nuc vs BF+Nuc": ("FL+Nuc", "BF+Nuc")}.items():
        if pair not in a.index.get_level_values(0):
            continue
        lower = np.minimum(w.xs(fl).to_numpy(), w.xs(bf).to_numpy())
        diffs = a.xs(pair).to_numpy() - lower
        mean, se, n = _stats(diffs)
        paper_lower = min(PUBLISHED["table1"][("CNN w/ mask", fl)][0],
                          PUBLISHED["table1"][("CNN w/ mask", bf)][0])
        rows.append({"claim": f"{pair}: agreement ≥ the lower accuracy",
                     "paper": PUBLISHED["cross_modality"][pair][0] - paper_lower, "ours": mean,
                     "se": se, "n": n, "verdict": verdict(diffs, strict=False),
                     "note": "agreement minus min(mIOU_FL, mIOU_BF) per replicate"})
    if {"FL vs BF", "FL+Nuc vs BF+Nuc"} <= set(a.index.get_level_values(0)):
        diffs = (a.xs("FL+Nuc vs BF+Nuc") - a.xs("FL vs BF")).to_numpy()
        mean, se, n = _stats(diffs)
        p = PUBLISHED["cross_modality"]
        rows.append({"claim": "agreement higher with Nuc",
                     "paper": p["FL+Nuc vs BF+Nuc"][0] - p["FL vs BF"][0], "ours": mean,
                     "se": se, "n": n, "verdict": verdict(diffs), "note": ""})
    return pd.DataFrame(rows)


def unseen_conclusions(unseen: pd.DataFrame) -> pd.DataFrame:
    """An unseen image is segmented about as well as by its own model."""
    rows = []
    for combo, g in unseen.groupby("combination", sort=False):
        diffs = (g["miou_unseen"] - g["miou_own"]).to_numpy()
        mean, se, n = _stats(diffs)
        lost = np.isfinite(se) and mean < -2 * se
        rows.append({"claim": f"{combo}: unseen image ≈ own model", "paper": float("nan"),
                     "ours": mean, "se": se, "n": n,
                     "verdict": "not held (significant)" if lost else "held",
                     "note": "mIOU vs truth, unseen − own; held unless a loss beyond 2 SE"})
    return pd.DataFrame(rows)


def edge_conclusions(cells: pd.DataFrame) -> pd.DataFrame:
    """Fig. S6: the mask helps cells at clump edges more than interior cells."""
    g = cells.groupby(["replicate", "combination", "position"])["gain"].mean().unstack()
    if not {"edge", "interior"} <= set(g.columns):
        return pd.DataFrame()
    diffs = (g["edge"] - g["interior"]).dropna().to_numpy()
    mean, se, n = _stats(diffs)
    return pd.DataFrame([{"claim": "mask gain larger at clump edges", "paper": float("nan"),
                          "ours": mean, "se": se, "n": n, "verdict": verdict(diffs),
                          "note": "edge − interior gain, per replicate × combination"}])


def synthetic_marker_section(rates: pd.DataFrame, miou: pd.DataFrame | None) -> list[str]:
    """Fig. 5's numbers: FN/FP rates of DoG markers (threshold fitted on the training
    fields, against DoG on the nucleus image, as the paper) and mIOU with synthetic vs
    real markers, each beside the paper's."""
    sel = rates[(rates["reference"] == "nuc DoG") & (rates["method"] == "dog")
                & rates["calibrated"].astype(bool)]
    long = sel.melt(id_vars=["modality"], value_vars=["fn_rate", "fp_rate"], var_name="rate")
    s = long.groupby(["modality", "rate"], sort=False)["value"].agg(
        mean="mean", std="std", n="count").reset_index()
    s = s.rename(columns={"modality": "method", "rate": "combination"})
    lines = ["## Synthetic nucleus markers (Fig. 5)", "",
             "False-negative and false-positive rates of DoG blobs of the synthetic nucleus "
             "image (threshold fitted on the training fields), paired within 15 µm with DoG "
             "blobs of the nucleus image; mean ± std over the folds.", "",
             _fmt(side_by_side(s, PUBLISHED["synthetic_markers"]).reset_index()), ""]
    if miou is not None and len(miou):
        m = summary(miou.rename(columns={"markers": "method", "modality": "combination"}))
        paper = {("synthetic", k): PUBLISHED["synthetic_markers"][(k, "miou")]
                 for k in ("FL", "BF")}
        lines += ["Per-cell mIOU of segmentations trained with synthetic vs real markers "
                  "(cells whose nucleus the markers pair with):", "",
                  _fmt(side_by_side(m, paper).reset_index()), ""]
    return lines


def synthetic_marker_conclusions(miou: pd.DataFrame) -> pd.DataFrame:
    """Synthetic markers segment about as well as real ones (paired by fold)."""
    rows = []
    for modality, g in miou.groupby("modality", sort=False):
        w = g.pivot_table(index="fold", columns="markers", values="miou")
        if not {"synthetic", "real"} <= set(w.columns):
            continue
        diffs = (w["synthetic"] - w["real"]).dropna().to_numpy()
        mean, se, n = _stats(diffs)
        lost = np.isfinite(se) and mean < -2 * se
        rows.append({"claim": f"{modality}: synthetic markers ≈ real markers",
                     "paper": float("nan"), "ours": mean, "se": se, "n": n,
                     "verdict": "not held (significant)" if lost else "held",
                     "note": "mIOU synthetic − real per fold; held unless a loss beyond 2 SE"})
    return pd.DataFrame(rows)


def _fmt(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table (no tabulate dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("nan", "—") for c in cells) + " |")
    return "\n".join(lines)


def _read(tables: Path, name: str) -> pd.DataFrame | None:
    path = tables / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def sections(tables: Path) -> list[str]:
    """Markdown sections (paper beside ours, conclusions) from the tables that exist."""
    tables = Path(tables)
    out: list[str] = []
    conclusions = []
    t1 = _read(tables, "05_table1")
    if t1 is not None:
        out += ["## Table 1 — per-cell mIOU, ours (paper)", "",
                "mean ± std over replicates; the paper's value in brackets.", "",
                _fmt(side_by_side(summary(t1), PUBLISHED["table1"]).reset_index()), ""]
        conclusions.append(table1_conclusions(t1))
    cm = _read(tables, "06_cross_modality")
    if cm is not None:
        s = summary(cm.assign(method="agreement"), by=("method", "pair")).rename(
            columns={"pair": "combination"})
        paper = {("agreement", k): v for k, v in PUBLISHED["cross_modality"].items()}
        out += ["## Cross-modality agreement (FL-trained vs BF-trained)", "",
                _fmt(side_by_side(s, paper).reset_index()), ""]
        if t1 is not None:
            conclusions.append(cross_modality_conclusions(cm, t1))
    un = _read(tables, "07_unseen_image")
    if un is not None:
        s = summary(un.assign(method="agreement with own model"), value="agreement")
        paper = {("agreement with own model", k): v for k, v in PUBLISHED["unseen_image"].items()}
        acc = un.groupby("combination", sort=False)[["miou_unseen", "miou_own"]].mean()
        out += ["## Unseen image", "", _fmt(side_by_side(s, paper).reset_index()), "",
                "Accuracy against the truth (mean over replicates):", "",
                _fmt(acc.reset_index()), ""]
        conclusions.append(unseen_conclusions(un))
    edge = _read(tables, "08_mask_edge_effect")
    if edge is not None:
        s = edge.groupby(["combination", "position"], sort=False)[
            ["iou_with", "iou_without", "gain"]].mean().reset_index()
        out += ["## Mask edge effect (Fig. S6): mean per-cell IoU", "", _fmt(s), ""]
        conclusions.append(edge_conclusions(edge))
    pr = _read(tables, "09_presets")
    if pr is not None:
        s = summary(pr.assign(combination="FL+Nuc"), by=("preset", "combination"))
        out += ["## Paper text vs released code (FL+Nuc, with mask)", "", _fmt(s), ""]
    rates = _read(tables, "11_synthetic_marker_rates")
    syn = _read(tables, "11_synthetic_marker_miou")
    if rates is not None:
        out += synthetic_marker_section(rates, syn)
        if syn is not None and len(syn):
            conclusions.append(synthetic_marker_conclusions(syn))
    if conclusions:
        c = pd.concat([x for x in conclusions if len(x)], ignore_index=True)
        out = (["## The paper's conclusions on our data", "",
                "Differences paired by replicate: ours = mean ± SE; *paper* = the same "
                "difference from the paper's numbers; *significant* = beyond 2 SE.", "",
                _fmt(c), ""] + out)
    return out
