"""Explainable Boosting Machines: a surrogate of the network, and a glassbox.

`fit_surrogate` fits an EBM to the *network's* decisions and measures on
held-out rows how often it agrees with them (its fidelity); only then may its
factors be shown as an account of the network. `fit_glassbox` fits an EBM to
the true labels, as an interpretable alternative a dossier can compare with.

A fitted EBM is kept as plain JSON (`EbmExplainer.to_dict`), never pickled:
interpret 0.7.8 writes JSON (`to_jsonable`) but its reader is marked
UNTESTED, so `EbmExplainer` stores the bins, term scores and intercept itself
and evaluates them with the same binning rules as interpret (a test checks the
two agree to 1e-9).
"""

from __future__ import annotations

from workers.ml.explain.ebm.explainer import (
    CATEGORICAL,
    EXPLAINER_FORMAT,
    EXPLAINER_FORMAT_VERSION,
    NUMERIC,
    EbmExplainer,
)
from workers.ml.explain.ebm.fidelity import (
    MIN_FIDELITY_GROUP,
    NEAR_THRESHOLD,
    fidelity_on,
)
from workers.ml.explain.ebm.fitting import (
    DEFAULT_INTERACTIONS,
    DEFAULT_MAX_FIT_ROWS,
    DEFAULT_OUTER_BAGS,
    NetworkPredict,
    fit_glassbox,
    fit_surrogate,
)
from workers.ml.explain.ebm.frames import (
    integer_columns,
    json_value,
    prepare_frame,
    typical_values,
)
from workers.ml.explain.ebm.results import (
    MIN_AGREEMENT,
    GlassboxResult,
    SurrogateResult,
    fidelity_ok,
)
from workers.ml.explain.ebm.terms import (
    Contribution,
    LocalExplanation,
    global_explanation,
    local_explanation,
)

__all__ = [
    "CATEGORICAL",
    "DEFAULT_INTERACTIONS",
    "DEFAULT_MAX_FIT_ROWS",
    "DEFAULT_OUTER_BAGS",
    "EXPLAINER_FORMAT",
    "EXPLAINER_FORMAT_VERSION",
    "MIN_AGREEMENT",
    "MIN_FIDELITY_GROUP",
    "NEAR_THRESHOLD",
    "NUMERIC",
    "Contribution",
    "EbmExplainer",
    "GlassboxResult",
    "LocalExplanation",
    "NetworkPredict",
    "SurrogateResult",
    "fidelity_ok",
    "fidelity_on",
    "fit_glassbox",
    "fit_surrogate",
    "global_explanation",
    "integer_columns",
    "json_value",
    "local_explanation",
    "prepare_frame",
    "typical_values",
]
