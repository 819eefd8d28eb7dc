"""Run the paper's ablations (Tables 1 and 2) from their bundle configs and collect a results table.

Each ablation is an override file in ``bundle/configs/ablations/`` merged on top of ``train.yaml``. For
every config of the chosen set this runner

1. trains: ``monai.bundle run training`` with ``train.yaml`` + the ablation file + ``--overrides``,
   into ``OUTPUT/<name>/`` (``latest.pt``, ``models/model.pt``);
2. evaluates: ``inference.yaml`` + ``evaluate.yaml`` with that run's best checkpoint (``latest.pt`` if no validation
   round ever improved) into ``OUTPUT/<name>/eval/`` (``metrics.json``, ``metrics.md``, ...);
3. collects JA / DI (segmentation means) and M_ACC / K_ACC (classification scores) from each
   ``metrics.json`` into ``OUTPUT/results_<set>.md`` laid out like the paper's Tables 1 and 2 (in
   percent, one decimal; ``-`` where the setting has no such branch, as in the paper), plus
   ``.csv`` and ``.json`` with the raw fractions.

Usage::

    python -m monai_mtt.apps.ablation --set table1|table2|all [--overrides key=value ...] [--output DIR]
        [--only NAME ...] [--config_file EXTRA.yaml] [--overwrite]

``--overrides`` go to the training and/or the evaluation config, wherever their top-level key exists
(``image_size`` -> training only, ``scales`` / ``views`` -> evaluation only, ``dataset_dir``,
``num_workers`` and ``network_def#...`` -> both); values are YAML (``scales=[224,256]``). An extra
``--config_file`` (e.g. ``bundle/configs/demo_cpu.yaml``) is merged on top of both. Without
``dataset_dir`` the runs use the ISIC-2017 sample embedded in the package (train on its labeled and
classification-only parts, select on its validation part, evaluate on its held-out test part).

A results table is never replaced unless ``--overwrite`` is given (which also retrains every run of
the set from scratch); without it, runs whose ``eval/metrics.json`` exists are reused, so an
interrupted set resumes where it stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SETS", "Ablation", "find_bundle", "load_ablations", "run_ablations", "format_results", "main"]

SETS = ("table1", "table2")
METRICS = ("JA", "DI", "M_ACC", "K_ACC")
_TITLES = {
    "table1": (
        "Setting",
        ("Table 1. Ablation studies on multi-task framework, dual-task consistency, and attended region consistency."),
    ),
    "table2": ("n Layer", "Table 2. Ablation studies on the number of Transformer layers."),
}


@dataclass
class Ablation:
    """One ablation config: its file, table, row label and which branches it reports."""

    name: str
    path: Path
    table: str
    row: str
    order: float
    segmentation: bool = True
    classification: bool = True
    same_as: str | None = None
    results: dict[str, Any] = field(default_factory=dict)


def find_bundle(bundle: str | Path | None = None) -> Path:
    """The bundle folder: ``bundle`` if given, else ``./bundle``, else the bundle this installation carries."""
    from monai_mtt.bundle import bundle_source

    candidates = [Path(bundle)] if bundle else [Path("bundle")]
    for c in candidates:
        if (c / "configs" / "train.yaml").is_file():
            return c.resolve()
    if not bundle:
        return bundle_source().resolve()
    raise FileNotFoundError(f"no bundle with configs/train.yaml found at {[str(c) for c in candidates]}")


def load_ablations(bundle: Path, which: str = "all", only: Sequence[str] | None = None) -> list[Ablation]:
    """The ablation configs of ``which`` (``table1``, ``table2`` or ``all``), in table order."""
    if which not in (*SETS, "all"):
        raise ValueError(f"unknown set {which!r}: choose table1, table2 or all")
    found = []
    for path in sorted((bundle / "configs" / "ablations").glob("*.yaml")):
        meta = (yaml.safe_load(path.read_text()) or {}).get("ablation")
        if not isinstance(meta, Mapping):
            continue
        found.append(
            Ablation(
                name=path.stem,
                path=path,
                table=str(meta["table"]),
                row=str(meta["row"]),
                order=float(meta["order"]),
                segmentation=bool(meta.get("segmentation", True)),
                classification=bool(meta.get("classification", True)),
                same_as=meta.get("same_as"),
            )
        )
    chosen = [a for a in found if which == "all" or a.table == which]
    if only:
        unknown = sorted(set(only) - {a.name for a in chosen})
        if unknown:
            raise ValueError(f"--only names not in set {which}: {unknown}; choose from {[a.name for a in chosen]}")
        chosen = [a for a in chosen if a.name in set(only)]
    if not chosen:
        raise ValueError(f"no ablation configs for set {which!r} in {bundle / 'configs' / 'ablations'}")
    return sorted(chosen, key=lambda a: (a.table, a.order))


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings -> dict; values parsed as YAML (numbers, lists, booleans, null)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        out[key.strip().lstrip("-")] = yaml.safe_load(value) if value.strip() else ""
    return out


def _top_keys(config_files: Sequence[Path]) -> set[str]:
    from monai.bundle import ConfigParser

    return set(ConfigParser.load_config_files([str(f) for f in config_files]).keys())


def route_overrides(
    overrides: Mapping[str, Any], train_files: Sequence[Path], eval_files: Sequence[Path]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split overrides into (training, evaluation) by where their top-level key exists."""
    train_keys, eval_keys = _top_keys(train_files), _top_keys(eval_files)
    train, evaluate, unknown = {}, {}, []
    for k, v in overrides.items():
        top = k.split("#")[0]
        if top in train_keys:
            train[k] = v
        if top in eval_keys:
            evaluate[k] = v
        if top not in train_keys and top not in eval_keys:
            unknown.append(k)
    if unknown:
        raise ValueError(f"overrides {unknown} match no key of train.yaml or inference.yaml + evaluate.yaml")
    return train, evaluate


def _resolved(config_files: Sequence[Path], overrides: Mapping[str, Any], key: str) -> Any:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    parser.update(dict(overrides))
    return parser.get_parsed_content(key)


def _log(msg: str) -> None:
    print(f"[ablation {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def collect(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """JA, DI, M_ACC, K_ACC (fractions) from an evaluation ``metrics.json``."""
    seg = (metrics.get("segmentation") or {}).get("mean") or {}
    cls = (metrics.get("classification") or {}).get("scores") or {}
    return {"JA": seg.get("JA"), "DI": seg.get("DI"), "M_ACC": cls.get("M_ACC"), "K_ACC": cls.get("K_ACC")}


def table_values(ab: Ablation) -> dict[str, float | None]:
    """The measured values, with the branches the setting does not train blanked (None -> ``-``)."""
    vals = dict(collect(ab.results))
    if not ab.segmentation:
        vals["JA"] = vals["DI"] = None
    if not ab.classification:
        vals["M_ACC"] = vals["K_ACC"] = None
    return vals


def _pct(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100.0 * float(v):.1f}"


def format_results(ablations: Sequence[Ablation]) -> str:
    """Markdown tables in the layout of the paper's Tables 1 and 2 (percent, one decimal)."""
    parts = []
    for table in SETS:
        rows = [a for a in ablations if a.table == table]
        if not rows:
            continue
        first, title = _TITLES[table]
        lines = [f"**{title}**", "", f"| {first} | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
        for a in rows:
            v = table_values(a)
            lines.append(f"| {a.row} | " + " | ".join(_pct(v[m]) for m in METRICS) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _write_results(ablations: Sequence[Ablation], output: Path, which: str) -> dict[str, Path]:
    base = output / f"results_{which}"
    md = base.with_suffix(".md")
    md.write_text(format_results(ablations))
    rows = []
    for a in ablations:
        rows.append(
            {
                "name": a.name,
                "table": a.table,
                "row": a.row,
                **table_values(a),
                "measured": collect(a.results),
                "metrics_json": str(a.results.get("_path", "")),
            }
        )
    base.with_suffix(".json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    with open(base.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "table", "row", *METRICS])
        for r in rows:
            w.writerow([r["name"], r["table"], r["row"], *("" if r[m] is None else repr(r[m]) for m in METRICS)])
    return {"md": md, "json": base.with_suffix(".json"), "csv": base.with_suffix(".csv")}


def run_ablations(
    which: str = "all",
    overrides: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    only: Sequence[str] | None = None,
    extra_configs: Sequence[str | Path] = (),
    overwrite: bool = False,
    bundle: str | Path | None = None,
) -> tuple[list[Ablation], dict[str, Path]]:
    """Train and evaluate every config of the set, then write the results tables.

    Returns:
        the ablations (with ``results`` = each evaluation's metrics.json content) and the paths of
        the written ``md``, ``csv`` and ``json`` tables.
    """
    from monai.bundle import run as bundle_run

    from monai_mtt.data import isic2017_sample_root

    bundle = find_bundle(bundle)
    configs = bundle / "configs"
    output = Path(output).resolve() if output else bundle / "runs" / "ablations"
    ablations = load_ablations(bundle, which, only)
    table_md = output / f"results_{which}.md"
    if table_md.exists() and not overwrite:
        raise FileExistsError(f"{table_md} exists: choose another --output or pass --overwrite.")
    output.mkdir(parents=True, exist_ok=True)
    extra = [Path(p).resolve() for p in extra_configs]
    meta, logging_file = str(configs / "metadata.json"), str(configs / "logging.conf")
    eval_files = [configs / "inference.yaml", configs / "evaluate.yaml", *extra]  # evaluate overrides inference
    overrides = dict(overrides or {})
    if not overrides.get("dataset_dir"):
        _log(f"no dataset_dir: using the embedded ISIC-2017 sample at {isic2017_sample_root()}")
    names = {a.name for a in ablations}
    t_all = time.time()
    for i, ab in enumerate(ablations, 1):
        run_dir = output / ab.name
        metrics_json = run_dir / "eval" / "metrics.json"
        if ab.same_as in names:
            src = next(a for a in ablations if a.name == ab.same_as)
            ab.results = src.results
            _log(f"[{i}/{len(ablations)}] {ab.name}: same config as {ab.same_as}, results reused")
            continue
        if overwrite and run_dir.exists():
            shutil.rmtree(run_dir)
        if metrics_json.is_file():
            ab.results = {**json.loads(metrics_json.read_text()), "_path": str(metrics_json)}
            _log(f"[{i}/{len(ablations)}] {ab.name}: reusing finished run {metrics_json}")
            continue
        train_files = [configs / "train.yaml", ab.path, *extra]
        train_ov, eval_ov = route_overrides(overrides, train_files, eval_files)
        train_ov.update(output_dir=str(run_dir), ckpt_dir=str(run_dir / "models"), bundle_root=str(bundle))
        num_layers = _resolved(train_files, train_ov, "num_layers")
        _log(f"[{i}/{len(ablations)}] {ab.name}: training ({ab.row}; num_layers={num_layers}) -> {run_dir}")
        t0 = time.time()
        bundle_run(
            run_id="training",
            meta_file=meta,
            config_file=[str(f) for f in train_files],
            logging_file=logging_file,
            **train_ov,
        )
        ckpt = run_dir / "models" / "model.pt"
        if not ckpt.is_file():
            ckpt = run_dir / "latest.pt"
            _log(f"{ab.name}: no validation round improved the key metric; evaluating the last weights {ckpt}")
        _log(f"[{i}/{len(ablations)}] {ab.name}: trained in {time.time() - t0:.0f} s; evaluating {ckpt}")
        t0 = time.time()
        eval_ov.update(
            checkpoint=str(ckpt), output_dir=str(run_dir / "eval"), num_layers=num_layers, bundle_root=str(bundle)
        )
        bundle_run(
            run_id="evaluating",
            meta_file=meta,
            config_file=[str(f) for f in eval_files],
            logging_file=logging_file,
            **eval_ov,
        )
        ab.results = {**json.loads(metrics_json.read_text()), "_path": str(metrics_json)}
        vals = table_values(ab)
        _log(
            f"[{i}/{len(ablations)}] {ab.name}: evaluated in {time.time() - t0:.0f} s: "
            + ", ".join(f"{m} {_pct(vals[m])}" for m in METRICS)
        )
    paths = _write_results(ablations, output, which)
    _log(f"done in {time.time() - t_all:.0f} s; results in {paths['md']} (.csv, .json)")
    print(paths["md"].read_text(), flush=True)
    return ablations, paths


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monai_mtt.apps.ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--set", dest="which", default="all", choices=[*SETS, "all"], help="which table to run")
    p.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides (YAML values), routed to training and/or evaluation by key",
    )
    p.add_argument("--output", default=None, help="output folder (default: bundle/runs/ablations)")
    p.add_argument("--only", nargs="*", default=None, metavar="NAME", help="run only these configs of the set")
    p.add_argument(
        "--config_file",
        nargs="*",
        default=[],
        help="extra config(s) merged on top of both, e.g. bundle/configs/demo_cpu.yaml",
    )
    p.add_argument("--bundle", default=None, help="bundle folder (default: ./bundle or the repository's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results table and retrain")
    p.add_argument("--list", action="store_true", help="list the configs of the set and exit")
    args = p.parse_args(argv)
    if args.list:
        for a in load_ablations(find_bundle(args.bundle), args.which, args.only):
            print(f"{a.name:28s} {a.table}  {a.row}")
        return 0
    try:
        run_ablations(
            args.which,
            parse_overrides(args.overrides),
            args.output,
            args.only,
            args.config_file,
            args.overwrite,
            args.bundle,
        )
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
