"""Explanations of the network's decisions: EBM (global and local) and DiCE.

`ebm` fits an Explainable Boosting Machine to the network's own decisions (a
surrogate, with its measured fidelity) or to the true labels (an interpretable
alternative), and keeps the fitted model as plain JSON. `counterfactuals`
searches for changes that flip the network's decision, in a child process
that is killed at the time budget, and re-scores every result on the network.
`phrasing` turns both into plain-language sentences.

Importing this package imports neither interpret nor dice-ml; the submodules do.
"""

from __future__ import annotations
