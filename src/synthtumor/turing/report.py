"""Score a reader study against its key: per reader and pooled over readers.

Positive = synthetic (the reader's task is to spot synthetic tumors). Per truth class, answers
fall in real / synthetic / unsure. The 2x2 table and the rates use *decided* answers only:
sensitivity = TP / (TP + FN) over synthetic cases answered real or synthetic, specificity =
TN / (TN + FP) over real cases answered real or synthetic, accuracy = (TP + TN) / decided.
Unsure answers are counted apart and also enter ``accuracy_unsure_wrong`` = (TP + TN) /
answered, which scores them as wrong. "Fooled by k of n": k synthetic cases called real, of the
n synthetic cases the reader answered (unsure included), as in the paper's reader study.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from synthtumor.errors import InputError
from synthtumor.files import make_folder, read_json, write_json_atomic, write_text_atomic
from synthtumor.turing.store import AnswerStore
from synthtumor.turing.study import ANSWERS, DATABASE, KEY, load_study

UNSURE_RULE = (
    "unsure answers are excluded from the 2x2 table, sensitivity, specificity and accuracy "
    "(rates over decided answers); accuracy_unsure_wrong counts them as wrong"
)


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def score(truth: dict[str, str], answers: dict[str, str]) -> dict[str, Any]:
    """Scores of one set of answers ({case_id: answer}) against the key ({case_id: truth}).

    Answers for case ids not in ``truth`` are ignored. Returns counts, the confusion table
    ``table[truth][answer]``, the rates (None when undefined) and the fooled count.
    """
    table = {t: {a: 0 for a in ANSWERS} for t in ("synthetic", "real")}
    for case_id, answer in answers.items():
        if case_id in truth and answer in ANSWERS:
            table[truth[case_id]][answer] += 1
    tp, fn = table["synthetic"]["synthetic"], table["synthetic"]["real"]
    tn, fp = table["real"]["real"], table["real"]["synthetic"]
    unsure = table["synthetic"]["unsure"] + table["real"]["unsure"]
    decided = tp + fn + tn + fp
    answered = decided + unsure
    n_syn = sum(v == "synthetic" for v in truth.values())
    syn_answered = tp + fn + table["synthetic"]["unsure"]
    return {
        "cases": len(truth), "cases_real": len(truth) - n_syn, "cases_synthetic": n_syn,
        "answered": answered, "unanswered": len(truth) - answered, "decided": decided,
        "unsure": unsure, "table": table, "tp": tp, "fn": fn, "tn": tn, "fp": fp,
        "accuracy": _rate(tp + tn, decided), "sensitivity": _rate(tp, tp + fn),
        "specificity": _rate(tn, tn + fp), "accuracy_unsure_wrong": _rate(tp + tn, answered),
        "fooled": {"k": fn, "n": syn_answered},
    }


def pooled(per_reader: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores of all readers' answers together (each reader × case is one answer)."""
    keys = ("cases", "cases_real", "cases_synthetic", "answered", "unanswered", "decided",
            "unsure", "tp", "fn", "tn", "fp")
    total = {k: sum(r[k] for r in per_reader) for k in keys}
    table = {t: {a: sum(r["table"][t][a] for r in per_reader) for a in ANSWERS}
             for t in ("synthetic", "real")}
    tp, fn, tn, fp = total["tp"], total["fn"], total["tn"], total["fp"]
    return {
        **total, "table": table,
        "accuracy": _rate(tp + tn, total["decided"]), "sensitivity": _rate(tp, tp + fn),
        "specificity": _rate(tn, tn + fp),
        "accuracy_unsure_wrong": _rate(tp + tn, total["answered"]),
        "fooled": {"k": fn, "n": sum(r["fooled"]["n"] for r in per_reader)},
    }


def read_key(study_dir: str | Path) -> dict[str, str]:
    """{case_id: 'real' | 'synthetic'} from the study's key.json (InputError if unusable)."""
    study = load_study(study_dir)
    data = read_json(study.folder / KEY)
    cases = data.get("cases") if data else None
    if not isinstance(cases, dict):
        raise InputError(study.folder / KEY, "is missing or damaged: the study cannot be scored")
    truth = {str(c): str(v.get("truth")) for c, v in cases.items() if isinstance(v, dict)}
    if set(truth) != set(study.case_ids) or not set(truth.values()) <= {"real", "synthetic"}:
        raise InputError(study.folder / KEY, "does not match the study's cases")
    return truth


def study_report(study_dir: str | Path) -> dict[str, Any]:
    """Scores per reader (in order of registration) and pooled, from key.json and the answers."""
    study = load_study(study_dir)
    truth = read_key(study.folder)
    db = study.folder / DATABASE
    answers: dict[str, dict[str, str]] = {}
    readers: list[str] = []
    if db.is_file():
        store = AnswerStore(db, write=False)
        answers = store.answers()
        readers = store.readers()
    per = {name: score(truth, answers.get(name, {})) for name in readers}
    return {"study": str(study.folder), "unsure_rule": UNSURE_RULE,
            "positive": "synthetic", "readers": per, "overall": pooled(list(per.values()))}


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def rows(report: dict[str, Any]) -> list[list[str]]:
    """The table printed and written: one row per reader, then 'all readers'."""
    out = []
    for name, s in [*report["readers"].items(), ("all readers", report["overall"])]:
        out.append([name, f"{s['answered']}/{s['cases']}", _pct(s["accuracy"]),
                    _pct(s["sensitivity"]), _pct(s["specificity"]),
                    f"{s['tp']}/{s['fn']}/{s['fp']}/{s['tn']}", str(s["unsure"]),
                    f"{s['fooled']['k']} of {s['fooled']['n']}"])
    return out


HEADER = ["reader", "answered", "acc.", "sens.", "spec.", "TP/FN/FP/TN", "unsure", "fooled"]


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the report."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                   for r in rows(report))
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Reader study report</title><style>body{font:15px system-ui;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}"
        "</style></head><body><h1>Visual Turing test: reader study report</h1>"
        f"<p>Study: {esc(report['study'])}. Positive = synthetic tumor. TP: synthetic called "
        "synthetic; FN: synthetic called real; FP: real called synthetic; TN: real called "
        "real. acc. = accuracy, sens. = sensitivity, spec. = specificity; fooled = synthetic "
        f"cases called real, of those answered. {esc(UNSURE_RULE.capitalize())}.</p>"
        f"<table><tr>{head}</tr>{body}</table></body></html>\n"
    )


def write_report(report: dict[str, Any], out: str | Path) -> list[Path]:
    """Write ``report.json`` and ``report.html`` into the folder ``out``; returns their paths."""
    out = Path(out)
    make_folder(out)
    write_json_atomic(out / "report.json", json.loads(json.dumps(report)))
    write_text_atomic(out / "report.html", render_html(report))
    return [out / "report.json", out / "report.html"]
