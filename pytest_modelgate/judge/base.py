"""What the statistics of ``PairedJudge`` share: its settings and the results without data."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_modelgate.judge.common import _SAMPLE_NOUNS, Margins, _Result, _Slice, _Spec
from pytest_modelgate.judge.inference import _points
from pytest_modelgate.judge.metrics import (
    CustomMetric,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    Samples,
)


class _JudgeBase:
    """The settings every statistic reads, and the results it gives without data."""

    margins: Margins
    confidence: float
    resamples: int
    min_cases: int
    paired: bool
    min_stable_pass_rate: float | None
    custom_metrics: tuple[CustomMetric, ...]

    def _unknown(
        self,
        spec: _Spec,
        piece: _Slice,
        margin: float | None,
        sums: Sequence[tuple[tuple[float, int] | None, tuple[float, int] | None]],
        gaps: str,
    ) -> _Result:
        """A figure unknown on at least one arm (a missing price or usage): reported, never ok.

        ``gaps`` says, per arm, which calls lack a cost and why (see ``CaseColumns.cost_gaps``).
        """

        def arm_value(index: int) -> tuple[float | None, int]:
            known = [pair[index] for pair in sums]
            calls = sum(k[1] for k in known if k is not None)
            if any(k is None for k in known) or not calls:
                return None, calls
            return math.fsum(k[0] for k in known if k is not None) / calls, calls

        (stable, s_calls), (candidate, c_calls) = arm_value(0), arm_value(1)
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=stable,
            candidate=candidate,
            change=None,
            change_kind="ratio",
            limit=None if margin is None else f"x{margin:.2f}",
            limit_value=margin,
            status="inconclusive" if margin is not None else "not_gated",
            samples=Samples(s_calls, c_calls),
            message="",
            scope=piece.scope,
            n=len(piece.positions),
            test=None,
        )
        return _Result(comparison, piece.gated and margin is not None, False, note=gaps)

    def _no_data(
        self, spec: _Spec, piece: _Slice, margin: float | None, always: bool
    ) -> _Result | None:
        """A metric no case has on both arms: which arm lacks it, and whether that blocks.

        Data on one arm only (no first token on the candidate's streams, no checked reply on
        the stable arm) counts against a pass wherever the metric is gated. With data on
        neither arm the metric does not apply here (no streamed call: no TTFT): reported when
        ``always``, else left out.
        """
        s_value, s_n = piece.columns.arm_figure(spec, piece.positions, "stable")
        c_value, c_n = piece.columns.arm_figure(spec, piece.positions, "candidate")

        def comparison(
            limit: str | None, limit_value: float | None, n: int, *, figures: bool
        ) -> MetricComparison:
            return MetricComparison(
                name=spec.name,
                unit=spec.unit,
                stable=s_value if figures else None,
                candidate=c_value if figures else None,
                change=None,
                change_kind="points" if spec.kind == "rate" else "ratio",
                limit=limit,
                limit_value=limit_value,
                status="no_data",
                samples=Samples(s_n, c_n),
                message="",
                scope=piece.scope,
                n=n,
            )

        if not s_n and not c_n:
            if not always:
                return None
            return _Result(comparison(None, None, 0, figures=False), False, False)
        what = _SAMPLE_NOUNS.get(spec.name, "checked replies")
        if not c_n:
            note = f"no data on the candidate arm (the stable arm has {s_n} {what})"
        elif not s_n:
            note = f"no data on the stable arm (the candidate arm has {c_n} {what})"
        elif spec.kind != "rate" and s_value == 0:
            note = "the stable figure is 0, so there is no ratio to judge"
        else:
            note = "no case has data on both arms"
        # A zero stable figure blocks only when the candidate's is not zero too.
        blocks = margin is not None and not (s_value == 0 and c_value == 0)
        if spec.kind == "rate":
            limit = (
                None if margin is None else _points(-margin if spec.higher_is_better else margin)
            )
            limit_value = (
                None if margin is None else (1 if spec.higher_is_better else -1) * -margin * 100
            )
        else:
            limit = None if margin is None else f"x{margin:.2f}"
            limit_value = margin
        return _Result(
            comparison(limit, limit_value, len(piece.positions), figures=True),
            piece.gated and blocks,
            False,
            note=note,
        )
