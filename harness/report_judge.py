"""The report's Judge section: for each strategy scored by `scorer: judge`, who judged and how far to trust it.

Reads only metrics.json's `scoring` (harness/scorers/judge.py writes it), so an old run re-reports: the judge
model and backend, the calibration (Cohen's kappa and agreement with human labels, or "uncalibrated" with the
agreement with token_f1), the unparseable verdicts and the verbosity check (answer length vs score).
"""

from __future__ import annotations

from typing import Any

from harness.report_format import bullets
from harness.run_schema import StrategyMetrics

HEADING = "Judge"
SCALE_WORDS = {"binary": "PASS (1) or FAIL (0)", "1-5": "a grade 1-5 mapped to 0-1"}


def is_judged(m: StrategyMetrics) -> bool:
    return bool(m.scoring) and "judge_model" in m.scoring


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _kappa(value: float | None) -> str:
    return "undefined (one grade throughout)" if value is None else f"{value:.2f}"


def calibration_line(c: dict[str, Any]) -> str:
    if c.get("status") == "calibrated":
        return (f"Calibration: Cohen's kappa {_kappa(c.get('kappa'))} ({c.get('kappa_weights')}, -1 to 1, 0 is "
                f"chance) and agreement {_percent(c.get('agreement'))} with human grades on {c['matched']} "
                f"answers ({c.get('labels_file')}: {c.get('labels')} labels)")
    why = c.get("reason") or "no human labels"
    return (f"**Uncalibrated** ({why}): agreement with {c.get('second_scorer', 'token_f1')} >= "
            f"{c.get('second_scorer_pass', 0.5)} {_percent(c.get('agreement'))}, kappa {_kappa(c.get('kappa'))}. "
            "A few dozen human grades in judge_labels.jsonl ({\"id\", \"prediction\", \"grade\"} per line) give "
            "the judge's agreement with people")


def judge_lines(s: dict[str, Any]) -> list[str]:
    """The bullet lines of one strategy's judge figures (its metrics.json `scoring`)."""
    serving = s.get("judge_serving") or {}
    quant = f", {serving['quantization']}" if serving.get("quantization") else ""
    who = (f"Judge `{s['judge_model']}` on {s.get('judge_backend', '?')}{quant}, {s.get('decoding', 'greedy')}, "
           f"at most {s.get('max_new_tokens', '?')} tokens per verdict; each answer graded alone against the "
           f"reference, {SCALE_WORDS.get(s.get('scale', ''), s.get('scale', '?'))}")
    if s.get("judge_is_task_model"):
        who += "; the judge is the model under test, which may favour answers like its own"
    judged = s.get("judged", 0)
    unparseable = s.get("unparseable", 0)
    lines = [who, calibration_line(s.get("calibration") or {}),
             f"Unparseable verdicts: {unparseable} of {judged} answers (each scored 0, its raw text in "
             "predictions.jsonl)" + (": **the judge does not follow the verdict format, so its scores and "
                                     "agreement say little**; use a stronger judge model" if judged and
                                     unparseable > judged / 2 else "")]
    rho = s.get("length_score_spearman")
    means = s.get("mean_length_by_score") or {}
    unit = s.get("length_unit", "characters")
    by_score = ", ".join(f"{mean:.0f} at score {score}" for score, mean in means.items())
    lines.append("Verbosity check: Spearman correlation of answer length with the judge's score "
                 + (f"{rho:+.2f}" if rho is not None else "undefined (length or score constant)")
                 + (f"; mean length in {unit}: {by_score}" if by_score else "")
                 + (" (a strong positive correlation can mean the judge rewards length)" if rho and rho > 0.3 else ""))
    if s.get("cached_verdicts"):
        lines.append(f"{s['cached_verdicts']} of {judged} verdicts from the generation cache")
    if s.get("truncated_prompts"):
        lines.append(f"{s['truncated_prompts']} judge prompts were cut to fit the judge's context window")
    return lines


def judge_body(ran: dict[str, StrategyMetrics]) -> str | None:
    """Markdown for the Judge section (a ### block per judged strategy), or None when no strategy was judged."""
    blocks = [f"### {name}\n\n" + bullets(judge_lines(m.scoring or {})) for name, m in ran.items() if is_judged(m)]
    return "\n\n".join(blocks) if blocks else None
