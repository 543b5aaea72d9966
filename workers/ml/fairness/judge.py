"""Disparities, intervals, verdicts and sentences for one attribute."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from workers.ml.explain.phrasing import attribute_label
from workers.ml.fairness import gates
from workers.ml.fairness.groups import INTERSECTION_SEPARATOR, GroupCodes
from workers.ml.fairness.policy import (
    DP_DIFFERENCE,
    DP_RATIO,
    EO_DIFFERENCE,
    EODDS_DIFFERENCE,
    FAIL,
    FOUR_FIFTHS,
    FPR_DIFFERENCE,
    INSUFFICIENT,
    METRIC_NAMES,
    PASS,
    FairnessPolicy,
)
from workers.ml.fairness.results import INFO, Disparity, Finding, GroupRatio

MOST_SELECTED, GIVEN = "most selected group", "given"
# Below this share of resamples that can compute a disparity, no interval.
_MIN_DEFINED_SHARE = 0.5


class AttributeJudge:
    """Disparities, intervals, verdicts and sentences for one attribute."""

    def __init__(
        self,
        view: GroupCodes,
        policy: FairnessPolicy,
        n_bootstrap: int,
        rates: dict[str, np.ndarray],
        has_labels: bool,
    ) -> None:
        self.view = view
        self.name = view.name
        # How sentences name the attribute (the spec's [names], each part of an
        # intersection); findings keep `name` for lookups.
        self.reader = attribute_label(view.name, INTERSECTION_SEPARATOR)
        self.labels = view.labels
        self.policy = policy
        self.n_bootstrap = n_bootstrap
        self.rates = rates
        self.has_labels = has_labels
        self.findings: list[Finding] = []

    # -- groups --

    def group_findings(
        self, sizes: np.ndarray, positives: np.ndarray, eligible: np.ndarray
    ) -> None:
        out = self.findings
        minimum = self.policy.min_group_size
        small = [g for g in range(len(sizes)) if not eligible[g]]
        if small:
            listed = ", ".join(
                f"'{self.labels[g]}' ({_rows(int(sizes[g]))})" for g in small
            )
            out.append(
                Finding(
                    INFO,
                    f"{_count(len(small), 'group')} in {self.reader} "
                    f"{'has' if len(small) == 1 else 'have'} fewer than {minimum} "
                    f"rows and {'is' if len(small) == 1 else 'are'} shown but not "
                    f"judged (too small to judge): {listed}.",
                    attribute=self.name,
                )
            )
        if self.has_labels:
            for g in np.flatnonzero(eligible & (positives == 0)):
                out.append(
                    Finding(
                        INFO,
                        f"Group '{self.labels[g]}' ({self.reader}) has no positive "
                        "outcomes, so its true positive rate is undefined and it "
                        "is left out of equal opportunity and equalized odds.",
                        attribute=self.name,
                        metric=EO_DIFFERENCE,
                    )
                )

    def not_comparable(
        self, sizes: np.ndarray, eligible: np.ndarray
    ) -> list[Disparity]:
        """Fewer than two groups of at least min_group_size rows: nothing can be
        measured, and the attribute's verdict is INSUFFICIENT (not enough data).
        The sentence gives every group's size and the minimum."""
        present = np.flatnonzero(sizes > 0)
        minimum = self.policy.min_group_size
        head = f"Not enough data to measure bias for {self.reader}"
        if present.size == 1:
            g = present[0]
            only = self.labels[g]
            reason = f"only one group ('{only}') in the data"
            sentence = (
                f"{head}: the data holds only one group ('{only}', "
                f"{_rows(int(sizes[g]))}), and a disparity needs two groups of at "
                f"least {minimum} rows."
            )
        else:
            judged = np.flatnonzero(eligible)
            others = [g for g in present if not eligible[g]]
            listed = ", ".join(
                f"'{self.labels[g]}' {_rows(int(sizes[g]))}" for g in others
            )
            reason = f"fewer than two groups have at least {minimum} rows"
            if judged.size:
                g = judged[0]
                sentence = (
                    f"{head}: only group '{self.labels[g]}' "
                    f"({_rows(int(sizes[g]))}) has at least {minimum} rows (the "
                    "minimum group size), and a disparity needs two such groups; "
                    f"the others have {listed}."
                )
            else:
                sentence = (
                    f"{head}: no group has at least {minimum} rows (the minimum "
                    f"group size); the groups have {listed}."
                )
        self.findings.append(Finding(INSUFFICIENT, sentence, attribute=self.name))
        return [
            Disparity(
                m, None, None, None, None, None, int(eligible.sum()), None, reason
            )
            for m in self._metrics()
        ]

    def _metrics(self) -> list[str]:
        if not self.has_labels:
            return [DP_DIFFERENCE, DP_RATIO]
        return [
            DP_DIFFERENCE,
            DP_RATIO,
            EO_DIFFERENCE,
            FPR_DIFFERENCE,
            EODDS_DIFFERENCE,
        ]

    # -- disparities --

    def disparities(
        self, selection: np.ndarray, tpr: np.ndarray, fpr: np.ndarray
    ) -> list[Disparity]:
        sel = self.rates["selection_rate"]
        dp, _ = self._spread(DP_DIFFERENCE, sel, selection)
        ratio = self._ratio(sel, selection)
        out = [self._gated(dp, sel), ratio]
        if not self.has_labels:
            return out
        eo, eo_samples = self._spread(
            EO_DIFFERENCE,
            self.rates["true_positive_rate"],
            tpr,
            "fewer than two judged groups have positive outcomes",
        )
        fp, fp_samples = self._spread(
            FPR_DIFFERENCE,
            self.rates["false_positive_rate"],
            fpr,
            "fewer than two judged groups have negative outcomes",
        )
        out += [self._gated(eo, self.rates["true_positive_rate"]), fp]
        out.append(self._equalized_odds(eo, eo_samples, fp, fp_samples))
        return out

    def _spread(
        self,
        metric: str,
        values: np.ndarray,
        mask: np.ndarray,
        why: str = "fewer than two groups to compare",
    ) -> tuple[Disparity, np.ndarray | None]:
        """max - min over the groups in mask, per resample (fairlearn's
        between_groups difference).

        A max - min of noisy rates is biased upward, so when the groups are
        nearly equal the percentile interval can sit wholly above the
        estimate; that errs toward warning, which is the safe side for a gate.
        """
        k = int(mask.sum())
        if k < 2:
            return Disparity(metric, None, None, None, None, None, k, None, why), None
        sub = values[:, mask]
        # fmax/fmin skip a group whose rate is 0/0 in one resample.
        spread = np.fmax.reduce(sub, axis=1) - np.fmin.reduce(sub, axis=1)
        idx = np.flatnonzero(mask)
        high, low = idx[np.argmax(sub[0])], idx[np.argmin(sub[0])]
        low_ci, high_ci, reason = self._interval(spread[1:])
        disparity = Disparity(
            metric,
            float(spread[0]),
            low_ci,
            high_ci,
            self.labels[high],
            self.labels[low],
            k,
            None,
            reason,
        )
        return disparity, spread[1:]

    def _ratio(self, sel: np.ndarray, mask: np.ndarray) -> Disparity:
        sub = sel[:, mask]
        top, bottom = np.fmax.reduce(sub, axis=1), np.fmin.reduce(sub, axis=1)
        idx = np.flatnonzero(mask)
        high, low = idx[np.argmax(sub[0])], idx[np.argmin(sub[0])]
        k = int(mask.sum())
        if top[0] == 0:
            why = "no judged group was selected, so the ratio is undefined"
            return Disparity(DP_RATIO, None, None, None, None, None, k, None, why)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = bottom / top
        low_ci, high_ci, reason = self._interval(ratio[1:])
        return Disparity(
            DP_RATIO,
            float(ratio[0]),
            low_ci,
            high_ci,
            self.labels[high],
            self.labels[low],
            k,
            None,  # judged group by group through the four-fifths rule
            reason,
        )

    def _equalized_odds(
        self,
        eo: Disparity,
        eo_samples: np.ndarray | None,
        fp: Disparity,
        fp_samples: np.ndarray | None,
    ) -> Disparity:
        if eo.value is None or fp.value is None or eo_samples is None:
            part = eo if eo.value is None else fp
            why = f"needs both rate gaps; {METRIC_NAMES[part.metric]}: {part.reason}"
            return Disparity(
                EODDS_DIFFERENCE, None, None, None, None, None, 0, None, why
            )
        assert fp_samples is not None
        # fairlearn's worst case: the larger of the TPR and FPR gaps.
        samples = np.maximum(eo_samples, fp_samples)
        larger = eo if eo.value >= fp.value else fp
        low_ci, high_ci, reason = self._interval(samples)
        disparity = Disparity(
            EODDS_DIFFERENCE,
            max(eo.value, fp.value),
            low_ci,
            high_ci,
            larger.high_group,
            larger.low_group,
            min(eo.groups_compared, fp.groups_compared),
            None,
            reason,
        )
        return self._gated(disparity, None, parts=(eo.value, fp.value))

    def _gated(
        self,
        disparity: Disparity,
        values: np.ndarray | None,
        parts: tuple[float, float] | None = None,
    ) -> Disparity:
        """Attach a verdict and a finding to a gated difference."""
        metric, value = disparity.metric, disparity.value
        if value is None:
            self.findings.append(
                Finding(
                    INFO,
                    f"The {METRIC_NAMES[metric]} for {self.reader} could not be "
                    f"computed: {disparity.reason}.",
                    attribute=self.name,
                    metric=metric,
                )
            )
            return disparity
        warn, fail = self.policy.limits(metric)
        verdict = gates.gate_difference(value, disparity.ci_high, warn, fail)
        interval = gates.interval_text(
            disparity.ci_low, disparity.ci_high, self.policy.confidence
        )
        clause = gates.difference_clause(verdict, value, interval, warn, fail)
        high_group, low_group = disparity.high_group or "", disparity.low_group or ""
        high, low = (high_group, 0.0), (low_group, 0.0)
        if values is not None:  # equalized odds names the gaps, not the rates
            high = (high_group, self._point(values, high_group))
            low = (low_group, self._point(values, low_group))
        sentence = gates.difference_sentence(
            metric,
            self.reader,
            value=value,
            high=high,
            low=low,
            clause=clause,
            parts=parts,
        )
        threshold = fail if verdict == FAIL else warn
        self.findings.append(
            Finding(
                verdict,
                sentence,
                attribute=self.name,
                metric=metric,
                value=value,
                threshold=threshold,
                ci_low=disparity.ci_low,
                ci_high=disparity.ci_high,
            )
        )
        return dataclasses.replace(disparity, verdict=verdict)

    def _point(self, values: np.ndarray, label: str) -> float:
        return float(values[0, self.labels.index(label)])

    def _interval(
        self, samples: np.ndarray
    ) -> tuple[float | None, float | None, str | None]:
        if not self.n_bootstrap:
            return None, None, "no bootstrap resamples were requested"
        finite = samples[np.isfinite(samples)]
        if finite.size < _MIN_DEFINED_SHARE * samples.size:
            return (
                None,
                None,
                f"only {finite.size} of {samples.size} resamples could compute it",
            )
        tail = (1 - self.policy.confidence) / 2 * 100
        low, high = np.percentile(finite, [tail, 100 - tail])
        return float(low), float(high), None

    # -- four-fifths --

    def reference(
        self, given: str | None, eligible: np.ndarray
    ) -> tuple[int | None, str]:
        sel = self.rates["selection_rate"][0]
        if given is not None:
            problem = None
            if given not in self.labels:
                problem = "is not among its groups"
            else:
                g = self.labels.index(given)
                if not eligible[g]:
                    problem = "is too small to judge"
                elif sel[g] == 0:
                    problem = "has nobody selected, so ratios to it are undefined"
                else:
                    return g, GIVEN
            self.findings.append(
                Finding(
                    INFO,
                    f"The reference group '{given}' for {self.reader} {problem}; "
                    "groups are compared with the most-selected group instead.",
                    attribute=self.name,
                    metric=FOUR_FIFTHS,
                )
            )
        idx = np.flatnonzero(eligible)
        top = idx[np.argmax(sel[idx])]
        if sel[top] == 0:
            self.findings.append(
                Finding(
                    INFO,
                    f"Nobody in a judged group of {self.reader} was selected, so the "
                    "four-fifths rule cannot be applied.",
                    attribute=self.name,
                    metric=FOUR_FIFTHS,
                )
            )
            return None, MOST_SELECTED
        return int(top), MOST_SELECTED

    def four_fifths(
        self, ref: int, sizes: np.ndarray, eligible: np.ndarray
    ) -> list[GroupRatio]:
        sel = self.rates["selection_rate"]
        line = self.policy.four_fifths_min_ratio
        confidence = self.policy.confidence
        reference = self.labels[ref]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = sel / sel[:, [ref]]
        out: list[GroupRatio] = []
        for g, label in enumerate(self.labels):
            if g == ref:
                continue
            if sizes[g] == 0:
                out.append(
                    GroupRatio(
                        label,
                        reference,
                        None,
                        None,
                        None,
                        None,
                        "no rows in this group",
                    )
                )
                continue
            value = float(ratios[0, g])
            low, high, reason = self._interval(ratios[1:, g])
            if not eligible[g]:
                why = (
                    f"too small to judge ({_rows(int(sizes[g]))}, fewer than "
                    f"{self.policy.min_group_size})"
                )
                out.append(GroupRatio(label, reference, value, low, high, None, why))
                continue
            verdict = gates.gate_ratio(value, low, line)
            out.append(GroupRatio(label, reference, value, low, high, verdict, reason))
            if verdict != PASS:
                self.findings.append(
                    self._ratio_finding(verdict, out[-1], line, confidence)
                )
        judged = [r for r in out if r.verdict is not None]
        if judged and all(r.verdict == PASS for r in judged):
            lowest = min(judged, key=lambda r: r.ratio or 0.0)
            self.findings.append(self._ratio_finding(PASS, lowest, line, confidence))
        return out

    def _ratio_finding(
        self, verdict: str, ratio: GroupRatio, line: float, confidence: float
    ) -> Finding:
        assert ratio.ratio is not None
        interval = gates.interval_text(ratio.ci_low, ratio.ci_high, confidence)
        sentence = gates.four_fifths_sentence(
            verdict,
            self.reader,
            group=ratio.group,
            reference=ratio.reference,
            ratio=ratio.ratio,
            line=line,
            interval=interval,
        )
        return Finding(
            verdict,
            sentence,
            attribute=self.name,
            metric=FOUR_FIFTHS,
            value=ratio.ratio,
            threshold=line,
            ci_low=ratio.ci_low,
            ci_high=ratio.ci_high,
        )


def _rows(count: int) -> str:
    return _count(count, "row")


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}" if k == 1 else f"{k} {noun}s"


def quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
