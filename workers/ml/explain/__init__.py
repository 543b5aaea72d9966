"""Explanations of the network's decisions: EBM (global and local) and DiCE.

`ebm` fits an Explainable Boosting Machine to the network's own decisions (a
surrogate, with its measured fidelity) or to the true labels (an interpretable
alternative), and keeps the fitted model as plain JSON. `faithful` turns the
surrogate's terms into factors for one person and checks each against the
network, falling back to Shapley values computed on the network. `protected`
flip-tests protected attributes and their proxies and measures the proxies.
`counterfactuals` finds minimal, plausible changes that lead to the desired
decision (DiCE in a child process killed at the time budget, plus a one-feature
search) and re-scores every result on the network. `phrasing` turns them into
plain-language sentences.

Importing this package imports neither interpret nor dice-ml; the submodules do.
"""

from __future__ import annotations
