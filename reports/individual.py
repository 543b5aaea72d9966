"""What an individual explanation says, from the decision's records.

For the person a decision was about: plain language (GDPR Art. 12(1)), the decision
and that it was automated (Art. 15(1)(h), 22), the data used, the main factors (Why:
each one checked on the network that decided, in points of the score compared with
the average person, so they add up to the score), whether a protected attribute or
a proxy of one would have changed it, what would have led to the favourable outcome
(What-if), how the system works (How), and their rights.

Every legal fact (controller, ground, lawful basis, purposes, classification...)
comes from the AI system record the decision's data set belongs to: a fact left
blank there is printed as "not recorded in this system", and a right is stated
only when the recorded facts meet its condition (docs/legal.md lists each
sentence, its article, its condition and its test).

Languages: every sentence and label here and in the template goes through
Django's translation framework, rendered in the language of the person's request
(`report_language`; locale/<code>/LC_MESSAGES/django.po). The sentences the
explainer stored (workers/ml/explain/phrasing.py) are in English, the catalogue's
source language; in any other language the report words them again from the
same stored figures (`_localised_sentences`), so no English sentence is left in a
German report. What the data set itself names (its columns, values and outcome
labels) is printed as the data set names it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.conf import settings
from django.utils import formats, timezone, translation
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext
from django.utils.translation import gettext_lazy as _

from governance.models import (
    AISystem,
    Decision,
    DecisionExplanation,
    ExplanationRequest,
    Report,
)
from governance.services.decisions import version_outcomes
from reports import charts
from workers.ml.explain.phrasing import feature_label, features_label, format_value

# Global importances shown in the "How" chart.
TOP_TERMS = 8


# The language the explainer's stored sentences are written in.
SOURCE_LANGUAGE = "en"


def report_language(report: Report) -> str:
    """The language a report is written in: the one the person chose on their
    request; the site's where the report answers no request."""
    chosen = report.request.language if report.request_id else ""
    if chosen in dict(settings.LANGUAGES):
        return chosen
    return translation.get_supported_language_variant(settings.LANGUAGE_CODE)


def _localised() -> bool:
    return (translation.get_language() or SOURCE_LANGUAGE).split("-")[0] != (
        SOURCE_LANGUAGE
    )


def _decimal(text: str) -> str:
    """A number written with a point, with the active language's separator."""
    return text.replace(".", formats.get_format("DECIMAL_SEPARATOR"))


def points(value: float | None) -> str:
    """0.0612 -> "+6.1 points": a share of the 0-1 score as percentage points."""
    if value is None:
        return gettext("n/a")
    number = 100 * float(value)
    if abs(number) < 0.05:
        return gettext("0 points")
    return gettext("%(value)s points") % {"value": _decimal(f"{number:+.1f}")}


def percent(share: float) -> str:
    """0.973 -> "97.3%" ("97,3 %" in German)."""
    return gettext("%(value)s%%") % {"value": _decimal(f"{100 * share:.1f}")}


def gdpr_article(code: str) -> str:
    """A GDPR provision as the reader's language cites it: "6(1)(f)" is "GDPR
    Art. 6(1)(f)" in English, "Art. 6 Abs. 1 lit. f DSGVO" in German."""
    match = re.fullmatch(r"(\d+)(?:\((\d+)\))?(?:\(([a-z])\))?", code)
    if match is None:
        return gettext("GDPR Art. %(article)s") % {"article": code}
    article, paragraph, point = match.groups()
    parts = {"article": article, "paragraph": paragraph, "point": point}
    if paragraph and point:
        return gettext("GDPR Art. %(article)s(%(paragraph)s)(%(point)s)") % parts
    if paragraph:
        return gettext("GDPR Art. %(article)s(%(paragraph)s)") % parts
    return gettext("GDPR Art. %(article)s") % parts


def _factor_rows(factors: dict[str, Any]) -> list[dict[str, Any]]:
    """The shown factors, then the rest, in points toward the favourable outcome.

    The bullets, the chart and the sum line all read these rows, so they always
    show the same factors."""
    favourable_sign = 1.0 if factors.get("favourable", 1) == 1 else -1.0
    rows = [
        {
            "label": features_label(f["features"]),
            "values": ", ".join(format_value(v) for v in f["values"]),
            "toward": f["toward_favourable"],
            "score_points": f["contribution"],
            "network_response": f["network_response"],
            "sentence": f["sentence"],
        }
        for f in factors.get("factors", [])
    ]
    other = factors.get("other") or 0.0
    residual = factors.get("residual") or 0.0
    if abs(other) >= 0.0005:
        rows.append(
            {
                "label": gettext("all your other details together"),
                "toward": favourable_sign * other,
                "score_points": other,
                "rest": True,
            }
        )
    if abs(residual) >= 0.0005:
        rows.append(
            {
                "label": gettext("difference between the summary model and the system"),
                "toward": favourable_sign * residual,
                "score_points": residual,
                "rest": True,
            }
        )
    return rows


def _factor_chart(rows: list[dict[str, Any]]) -> str | None:
    if not rows:
        return None
    title = gettext("What counted in your favour (right) or against you (left)")
    svg = charts.bar_chart_horizontal(
        [(row["label"], round(100 * row["toward"], 1)) for row in rows],
        title=title,
        # Signed toward the outcome the person wanted: where a higher score is
        # the adverse outcome, a factor that raised it is drawn below zero.
        value_label=gettext(
            "points for (+) or against (-) you, vs. the average person"
        ),
        decimals=1,
    )
    return charts.embed(
        svg,
        caption=title,
        alt=gettext("The factors that counted for (+) or against (-) you, in points: ")
        + "; ".join(f"{row['label']} {points(row['toward'])}" for row in rows),
    )


def _how_chart(global_explanation: dict[str, Any]) -> str | None:
    importances = global_explanation.get("importances", [])[:TOP_TERMS]
    if not importances:
        return None
    bars = [(features_label(t["features"]), t["importance"]) for t in importances]
    title = gettext("What the system weighs most, across everyone")
    svg = charts.bar_chart_horizontal(
        bars,
        title=title,
        signed=False,
        value_label=gettext("average effect on the score"),
    )
    # The alternative text says what the bars show, with the numbers they draw.
    return charts.embed(
        svg,
        caption=title,
        alt=gettext(
            "What the system weighs most across everyone, by the average effect "
            "of each detail on the score (a bigger number weighs more): "
        )
        + "; ".join(
            f"{label} {_decimal(charts.format_number(value))}" for label, value in bars
        ),
    )


def _what_if(counterfactuals: dict[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for cf in counterfactuals.get("counterfactuals", []):
        changes = []
        for change in cf.get("changes", []):
            delta = change.get("delta")
            how_far = (
                f"{'+' if delta > 0 else ''}{format_value(delta)}"
                if isinstance(delta, int | float)
                else f"{format_value(change['from'])} → {format_value(change['to'])}"
            )
            changes.append(f"{feature_label(change['feature'])} {how_far}")
        shown.append(
            {
                "sentence": cf["sentence"],
                "actionable": cf.get("actionable", True),
                "how_far": "; ".join(changes),
                "score": cf.get("probability"),
            }
        )
    return shown


# Marked for the catalogue and translated where it is shown (gettext).
NOT_RECORDED = gettext_noop("not recorded in this system")

# The grounds of GDPR Art. 22(2) on which a solely automated decision is allowed.
ART22_GROUNDS = {
    AISystem.Art22Ground.CONTRACT: (
        _(
            "it is necessary for entering into, or performing, a contract between "
            "you and {controller}"
        ),
        "Art. 22(2)(a)",
    ),
    AISystem.Art22Ground.LAW: (
        _(
            "it is authorised by Union or member-state law to which {controller} "
            "is subject"
        ),
        "Art. 22(2)(b)",
    ),
    AISystem.Art22Ground.CONSENT: (_("your explicit consent"), "Art. 22(2)(c)"),
}

# GDPR Art. 6(1), in plain words.
LAWFUL_BASES = {
    "6(1)(a)": _("your consent"),
    "6(1)(b)": _(
        "the performance of a contract with you, or steps you asked for before "
        "entering into one"
    ),
    "6(1)(c)": _("a legal obligation of the controller"),
    "6(1)(d)": _("the protection of your vital interests or those of another person"),
    "6(1)(e)": _(
        "a task carried out in the public interest or in the exercise of official "
        "authority"
    ),
    "6(1)(f)": _("the controller's legitimate interests"),
}

# GDPR Art. 9(2), in plain words.
ART9_CONDITIONS = {
    "9(2)(a)": _("your explicit consent"),
    "9(2)(b)": _("obligations and rights in employment and social security law"),
    "9(2)(c)": _("the protection of vital interests"),
    "9(2)(d)": _("the activities of a not-for-profit body"),
    "9(2)(e)": _("data you have manifestly made public"),
    "9(2)(f)": _("legal claims"),
    "9(2)(g)": _("reasons of substantial public interest, on the basis of law"),
    "9(2)(h)": _("health or social care"),
    "9(2)(i)": _("public health"),
    "9(2)(j)": _("archiving, research or statistics"),
}

# The areas of AI Act Annex III, by point.
ANNEX_III_AREAS = {
    "1": _("biometrics"),
    "2": _("critical infrastructure"),
    "3": _("education and vocational training"),
    "4": _("employment and workers management"),
    "5": _("access to essential private and public services and benefits"),
    "6": _("law enforcement"),
    "7": _("migration, asylum and border control"),
    "8": _("administration of justice and democratic processes"),
}


def _recorded(system: AISystem | None, field: str) -> str:
    return (getattr(system, field, "") or "").strip() if system else ""


def legal_facts(
    decision: Decision, request: ExplanationRequest | None, *, written_at: Any
) -> dict[str, Any]:
    """The facts the legal sentences turn on, from the decision's AI system
    record (blank when not recorded) and the request's dates.

    `automation` is "solely" (solely automated, GDPR Art. 22 applies), "person"
    (a person decided: the record says so, or a person replaced the automated
    decision) or "unknown" (the data set belongs to no AI system record)."""
    system: AISystem | None = decision.model_version.system
    controller = _recorded(system, "controller_name")
    if not decision.automated:
        automation = "person"
    elif system is None:
        automation = "unknown"
    elif system.solely_automated:
        automation = "solely"
    else:
        automation = "person"
    solely = automation == "solely"
    ground = system.art22_ground if system and solely else ""
    ground_text, ground_article = ART22_GROUNDS.get(ground, ("", ""))
    basis = system.lawful_basis if system else ""
    art9 = system.art9_condition if system else ""
    point = _recorded(system, "annex_iii_point")
    # "the controller" where no name is recorded, inside a sentence.
    called = controller or gettext("the controller")
    facts: dict[str, Any] = {
        "not_recorded": gettext(NOT_RECORDED),
        "system": system,
        "is_example": bool(system and system.is_example),
        "controller": {
            "name": controller,
            "called": called,
            "contact": _recorded(system, "controller_contact"),
            "dpo_contact": _recorded(system, "dpo_contact"),
            "supervisory_authority": _recorded(system, "supervisory_authority"),
        },
        "provider": {
            "name": _recorded(system, "provider_name"),
            "contact": _recorded(system, "provider_contact"),
        },
        "automation": automation,
        "solely_automated": solely,
        "art22_ground": ground,
        "art22_ground_text": str(ground_text).format(controller=called),
        "art22_ground_article": ground_article,
        # The same provision as the reader's language cites it.
        "art22_ground_ref": gdpr_article(ground_article.removeprefix("Art. "))
        if ground_article
        else "",
        # Art. 22(3): where the ground is a contract or explicit consent.
        "art22_3_applies": ground
        in (AISystem.Art22Ground.CONTRACT, AISystem.Art22Ground.CONSENT),
        "significance": _recorded(system, "significance"),
        "consequences": _recorded(system, "consequences"),
        "purposes": _recorded(system, "purposes"),
        "retention": _recorded(system, "retention"),
        "data_sources": _recorded(system, "data_sources"),
        "lawful_basis": basis,
        "lawful_basis_text": str(LAWFUL_BASES.get(basis, "")),
        "lawful_basis_ref": gdpr_article(basis) if basis else "",
        # Art. 21(1): processing based on Art. 6(1)(e) or (f).
        "objection_applies": basis in ("6(1)(e)", "6(1)(f)"),
        # Art. 7(3): wherever consent is relied on.
        "consent_relied_on": basis == "6(1)(a)"
        or ground == AISystem.Art22Ground.CONSENT
        or art9 == "9(2)(a)",
        "art9_condition": art9,
        "art9_text": str(ART9_CONDITIONS.get(art9, "")),
        "art9_ref": gdpr_article(art9) if art9 else "",
        "art9_measures": _recorded(system, "art9_measures") if art9 else "",
        # Art. 22(4) allows special categories in a solely automated decision
        # only under Art. 9(2)(a) or (g).
        "art22_4_condition": solely and art9 in AISystem.ART22_4_CONDITIONS,
        "high_risk": bool(system and system.high_risk),
        "annex_iii_point": point,
        "annex_iii_area": str(ANNEX_III_AREAS.get(point[:1], "")),
        "art86_applies": bool(system and system.art86_applies),
        "not_high_risk_reason": ""
        if point
        else _recorded(system, "not_high_risk_reason"),
        "written_at": written_at,
        "late_days": 0,
    }
    if request is not None:
        deadline = request.deadline
        late = (timezone.localdate(written_at) - timezone.localdate(deadline)).days
        facts.update(
            received_at=request.received_at,
            due_at=request.due_at,
            extended_due_at=request.extended_due_at,
            extension_reason=(request.extension_reason or "").strip(),
            deadline=deadline,
            late_days=max(late, 0),
        )
    return facts


def contest_law(decision: Decision) -> dict[str, Any]:
    """What the law gives a person who contests `decision`, for the status page and
    the letter. `basis` is "art22_3" (solely automated on a contract or explicit
    consent: GDPR Art. 22(3) applies), "art22_2b" (solely automated under a law,
    which must lay down the safeguards), "no_ground" (solely automated, no Art.
    22(2) ground recorded), "person" (a person decides with the system's result)
    or "unknown" (no system record). `art12` is whether the Art. 12(3) time limit
    binds the answer: a contest under Art. 22(3) is a request under Art. 22."""
    facts = legal_facts(decision, None, written_at=timezone.now())
    solely = facts["solely_automated"]
    if solely and facts["art22_3_applies"]:
        basis = "art22_3"
    elif solely and facts["art22_ground"] == AISystem.Art22Ground.LAW:
        basis = "art22_2b"
    elif solely:
        basis = "no_ground"
    else:
        basis = facts["automation"]
    return {
        "basis": basis,
        # Art. 12(3)'s month binds a contest made under Art. 22(3); under a
        # law's own safeguards, or with no ground recorded, it is our undertaking.
        "art12": basis == "art22_3",
        "solely_automated": solely,
        "controller": facts["controller"],
    }


def individual_context(report: Report) -> dict[str, Any]:
    """What the report says: about its own decision, request and explanation,
    fixed when it was requested (never "the latest" of the decision)."""
    decision: Decision = report.decision
    request: ExplanationRequest | None = report.request
    explanation: DecisionExplanation | None = report.explanation
    version = decision.model_version
    outcomes = version_outcomes(version)
    decided = int(decision.positive)
    data_used = [
        {"name": feature_label(name), "value": format_value(value)}
        for name, value in decision.inputs.items()
    ]
    context: dict[str, Any] = {
        **legal_facts(decision, request, written_at=timezone.now()),
        "decision": decision,
        "request": request,
        "version": version,
        "data_used": data_used,
        "explanation": explanation,
        "lang": translation.get_language(),
        "outcome_text": outcomes.text(decided),
        "glassbox": version.kind == version.Kind.GLASSBOX,
        "favourable": outcomes.is_favourable(decided),
        "positive_text": outcomes.text(1),
        "negative_text": outcomes.text(0),
    }
    if explanation is None:
        return context
    factors = explanation.factors
    rows = _factor_rows(factors)
    counterfactuals = explanation.counterfactuals
    what_if = _what_if(counterfactuals)
    explainer = explanation.explainer
    flips = explanation.flips
    context.update(
        factors=factors,
        factor_rows=rows,
        factors_in_favour=[r for r in rows if not r.get("rest") and r["toward"] > 0],
        factors_against=[r for r in rows if not r.get("rest") and r["toward"] < 0],
        factor_chart=_factor_chart(rows),
        baseline=factors.get("baseline"),
        on_network=factors.get("method") == "network_shapley",
        agreement=percent(explainer.agreement),
        fidelity_rows=(explainer.fidelity or {}).get("rows", ""),
        fidelity_ok=explainer.fidelity_ok,
        how_chart=_how_chart(explainer.global_explanation),
        what_if_advice=[w for w in what_if if w["actionable"]],
        what_if_other=[w for w in what_if if not w["actionable"]],
        what_if_message=counterfactuals.get("message", ""),
        what_if_status=explanation.counterfactual_status,
        immutable=[
            feature_label(f)
            for f in counterfactuals.get("constraints", {}).get("immutable", [])
        ],
        flip_sentences=[t["sentence"] for t in flips.get("flips", [])],
        flip_tested=sorted(
            {feature_label(t["feature"]) for t in flips.get("trials", [])}
        ),
        technical=_technical(factors),
        # The explainer's own notes are in English: another language says so.
        technical_language=SOURCE_LANGUAGE if _localised() else "",
    )
    if _localised():
        context.update(
            _localised_sentences(
                rows=rows,
                factors=factors,
                counterfactuals=counterfactuals,
                flips=flips,
                other_outcome=outcomes.text(1 - decided),
            )
        )
        # The stored description of those rows is English: say it from its figures.
        n = (explainer.fidelity or {}).get("n")
        if isinstance(n, int):
            context["fidelity_rows"] = gettext(
                "%(count)s cases of %(domain)s that were not used to build it"
            ) % {
                "count": formats.number_format(n, force_grouping=True),
                "domain": explainer.domain.name,
            }
    return context


def _points_text(share: float) -> str:
    """phrasing.points_text in the reader's language: hundredths of the score,
    rounded half up."""
    count = math.floor(100 * abs(float(share)) + 0.5)
    if count == 0:
        return gettext("less than 1 point")
    return ngettext("%(count)d point", "%(count)d points", count) % {"count": count}


def _quoted(label: str) -> str:
    return pgettext("a name from the data, quoted", "“%(name)s”") % {"name": label}


def _localised_sentences(
    *,
    rows: list[dict[str, Any]],
    factors: dict[str, Any],
    counterfactuals: dict[str, Any],
    flips: dict[str, Any],
    other_outcome: str,
) -> dict[str, Any]:
    """The factor, what-if and flip sentences in the active language, from the
    figures the English ones were written from (the same rows, the same order,
    the same conditions)."""
    shown = [r for r in rows if not r.get("rest")]
    for row in shown:
        subject = _quoted(f"{row['label']} ({row['values']})")
        toward = row["toward"]
        if toward > 0:
            text = gettext(
                "%(subject)s counted in your favour: %(points)s compared with the "
                "average person in the data the system learned from."
            )
        elif toward < 0:
            text = gettext(
                "%(subject)s counted against you: %(points)s compared with the "
                "average person in the data the system learned from."
            )
        else:
            text = gettext(
                "%(subject)s made no difference compared with the average person "
                "in the data the system learned from."
            )
        row["sentence"] = text % {"subject": subject, "points": _points_text(toward)}
    what_if = _what_if(counterfactuals)
    for cf, shown_cf in zip(
        counterfactuals.get("counterfactuals", []), what_if, strict=True
    ):
        clauses = [
            gettext("%(feature)s %(after)s instead of %(before)s")
            % {
                "feature": _quoted(feature_label(change["feature"])),
                "after": format_value(change["to"]),
                "before": format_value(change["from"]),
            }
            for change in cf.get("changes", [])
        ]
        if len(clauses) > 1:
            joined = gettext("%(first)s and %(last)s") % {
                "first": ", ".join(clauses[:-1]),
                "last": clauses[-1],
            }
        else:
            joined = "".join(clauses)
        outcome = str(other_outcome).strip().rstrip(".")
        shown_cf["sentence"] = (
            gettext(
                "Had your details been different in this way: %(changes)s, the "
                "decision would have gone the other way: %(outcome)s."
            )
            % {"changes": joined, "outcome": outcome}
            if clauses
            else gettext("No change was needed: %(outcome)s.") % {"outcome": outcome}
        )
    flip_sentences = []
    for trial in flips.get("flips", []):
        values = {
            "feature": _quoted(feature_label(trial["feature"])),
            "value": format_value(trial["value"]),
        }
        linked = trial.get("of") if trial.get("role") == "proxy" else None
        if linked and linked != trial["feature"]:
            values["linked"] = _quoted(feature_label(linked))
            text = gettext(
                "Had %(value)s been recorded for %(feature)s, which in our data is "
                "closely linked with %(linked)s, with everything else the same, "
                "the system would have decided differently."
            )
        else:
            text = gettext(
                "Had %(value)s been recorded for %(feature)s, with everything else "
                "the same, the system would have decided differently."
            )
        flip_sentences.append(text % values)
    return {
        "factors_in_favour": [r for r in shown if r["toward"] > 0],
        "factors_against": [r for r in shown if r["toward"] < 0],
        "what_if_advice": [w for w in what_if if w["actionable"]],
        "what_if_other": [w for w in what_if if not w["actionable"]],
        "what_if_message": "",
        "flip_sentences": flip_sentences,
    }


def _technical(factors: dict[str, Any]) -> dict[str, Any]:
    """The figures behind the factors, for a technical reader (the annex): each
    shown factor beside the network's own response to that detail alone, and,
    where the surrogate was set aside, its factors and why."""

    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "label": features_label(c["features"]),
                "contribution": points(c["contribution"]),
                "network_response": points(c["network_response"]),
                "agrees": c["agrees"],
            }
            for c in items
        ]

    on_network = factors.get("method") == "network_shapley"
    return {
        "method_note": factors.get("method_note", ""),
        "reason": factors.get("reason", ""),
        "network_score": factors.get("network_score"),
        "surrogate_score": factors.get("surrogate_score"),
        "baseline": factors.get("baseline"),
        "shown": rows(factors.get("factors", [])),
        "withheld": rows(factors.get("withheld", [])),
        "surrogate_checks": rows(factors.get("checks", [])) if on_network else [],
    }
