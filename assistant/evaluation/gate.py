"""The release gate (`assistant eval gate`): a candidate may not be worse than the baseline beyond tolerances.

A gate file is TOML with one table, `[tolerances]`, naming the metrics to check (figures of `eval
answers`) and how much worse the candidate may be on each:

    [tolerances]
    answer_rate = 0.03       # higher is better: fails when candidate < baseline - 0.03
    wrong_fact_rate = 0.03   # lower is better:  fails when candidate > baseline + 0.03
    latency_p95_s = 0.5      # latency is relative: fails when candidate > baseline * 1.5

A metric that neither side can measure (no answered item, say) is reported and not held against the
candidate; one only the baseline has fails (the candidate lost what the baseline could do).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import InvalidOption

HIGHER_IS_BETTER = ("answer_rate", "abstention", "groundedness", "citation_precision", "fact_recall", "token_f1",
                    "rouge_l")
LOWER_IS_BETTER = ("wrong_fact_rate", "fallback_rate")
RELATIVE = ("latency_p50_s", "latency_p95_s", "first_sentence_p50_s")
DEFAULT_TOLERANCES = {"answer_rate": 0.03, "abstention": 0.08, "groundedness": 0.03, "fact_recall": 0.03,
                      "wrong_fact_rate": 0.03, "latency_p95_s": 0.5}
"""One item's worth on the demo dev set (34 answerable questions: 1/34 ≈ 0.03; 13 unanswerable: 1/13 ≈ 0.08), and
half again for latency, which moves with machine load from run to run (a judgement, not fitted)."""


@dataclass(frozen=True)
class GateConfig:
    """Which metrics the gate checks and the tolerance of each."""

    tolerances: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))

    @classmethod
    def load(cls, path: Path | None) -> GateConfig:
        """The gate file, or the defaults when none is given; a bad file is a clear error."""
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise InvalidOption(f"gate file {path} does not exist: give a TOML file with a [tolerances] table") \
                from err
        except tomllib.TOMLDecodeError as err:
            raise InvalidOption(f"gate file {path} is not valid TOML ({err})") from err
        tolerances = data.get("tolerances")
        if not isinstance(tolerances, dict) or not tolerances:
            raise InvalidOption(f"gate file {path} has no [tolerances] table: name at least one metric, "
                                "e.g. answer_rate = 0.03")
        known = (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, *RELATIVE)
        for name, value in tolerances.items():
            if name not in known:
                raise InvalidOption(f"gate file {path}: {name!r} is not a metric the gate knows; use one of "
                                    f"{', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidOption(f"gate file {path}: the tolerance of {name} must be a number >= 0, not {value!r}")
        return cls({name: float(value) for name, value in tolerances.items()})


def check_metric(name: str, baseline: float | None, candidate: float | None, tolerance: float) -> dict[str, Any]:
    """One metric's verdict: passed or not, and why, in words."""
    row: dict[str, Any] = {"metric": name, "baseline": baseline, "candidate": candidate, "tolerance": tolerance}
    if baseline is None:
        return {**row, "passed": True, "why": "the baseline has no figure to compare with"}
    if candidate is None:
        return {**row, "passed": False, "why": "the candidate has no figure where the baseline has one"}
    if name in HIGHER_IS_BETTER:
        limit, passed = baseline - tolerance, candidate >= baseline - tolerance - 1e-12
        words = f"{candidate:.3f} {'>=' if passed else '<'} {limit:.3f} (baseline {baseline:.3f} - {tolerance:g})"
    elif name in LOWER_IS_BETTER:
        limit, passed = baseline + tolerance, candidate <= baseline + tolerance + 1e-12
        words = f"{candidate:.3f} {'<=' if passed else '>'} {limit:.3f} (baseline {baseline:.3f} + {tolerance:g})"
    else:
        limit, passed = baseline * (1 + tolerance), candidate <= baseline * (1 + tolerance) + 1e-12
        words = (f"{candidate:.2f} s {'<=' if passed else '>'} {limit:.2f} s "
                 f"(baseline {baseline:.2f} s x {1 + tolerance:g})")
    return {**row, "passed": passed, "why": words}


def gate(baseline: dict[str, Any], candidate: dict[str, Any], config: GateConfig) -> dict[str, Any]:
    """`passed` and one row per configured metric, from the two runs' `eval answers` figures."""
    checks = [check_metric(name, baseline.get(name), candidate.get(name), tolerance)
              for name, tolerance in config.tolerances.items()]
    return {"passed": all(c["passed"] for c in checks), "failed": [c["metric"] for c in checks if not c["passed"]],
            "checks": checks}
