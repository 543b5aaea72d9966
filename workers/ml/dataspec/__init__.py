"""Dataset specs: how to read any tabular CSV, and what its columns mean.

A data scientist registers a CSV (or several, concatenated) with a TOML spec. This
package parses the spec, reads and checks the data, and answers the questions the
rest of the pipeline asks: which rows form a domain, which group a row belongs to
for a bias check, how to split train and test. It imports no Django: the
governance services store ``DatasetSpec.to_dict()`` and the table's hashes.

Modules, each imported only by those after it: ``base`` (limits, errors),
``parts`` (FileSpec, TargetSpec, ProtectedAttribute, DeriveSpec, DomainSpec),
``keys`` (reading one TOML key), ``spec`` (DatasetSpec and its checks),
``prescan`` (bounding TOML), ``files`` (opening files safely), ``specfile``
(parse_spec, read_spec_text, load_spec), ``csvfile`` (reading one CSV file),
``table`` (LoadedTable and typing), ``domains``, ``groups`` (protected_groups),
``split`` (split_indices) and ``load`` (load_table, check_headers).

Spec format (TOML; paths are relative to the spec file's folder)::

    name = "adult"                      # required, [a-z0-9_-]+
    title = "Adult census income"       # optional, defaults to name
    description = "..."                 # optional
    licence = "CC BY 4.0"               # optional
    provenance = "UCI ..."              # optional
    files = [                           # required; read in order and concatenated
        { path = "../adult/adult.data.gz" },
        { path = "../adult/adult.test.gz", skip_rows = 1 },  # or just "a.csv"
    ]
    separator = ","                     # one character; default ","
    header = false                      # default true (each file has its header)
    columns = ["age", "..."]            # required when header = false, else absent
    missing_values = ["?"]              # markers read as missing, besides ""
    strip_whitespace = true             # strip spaces around cells; default false
    immutable = ["workclass"]           # may not change in a counterfactual
    increase_only = ["age"]             # may only grow in a counterfactual
    decrease_only = ["debt"]            # may only shrink in a counterfactual
    actionable = ["hours_per_week"]     # advice only on these; absent: every
                                        # feature that may change; []: none
    id_column = "encounter_id"          # optional; unique, kept, not a feature
    group_column = "patient_nbr"        # optional; a group stays on one split side
    special_category = ["diag_1"]       # other columns holding GDPR Art. 9 data

    [target]
    column = "income"
    labels = ["<=50K", ">50K"]          # every allowed label, after aliases
    positive = ">50K"                   # a label or a list of labels -> y = 1
    favourable = ">50K"                 # the outcome good for the person: the
                                        # positive labels (default) or the others
    aliases = { ">50K." = ">50K" }      # raw value -> label

    [target.wording]                    # optional: how each outcome is said to
    "<=50K" = "your application was refused"   # the person (labels on one
    ">50K" = "your application was approved"   # side share one sentence)

    [features]                          # all optional
    numeric = ["age"]                   # else inferred: numeric when every
    categorical = ["education-num"]     # present value is a finite number
    drop = ["fnlwgt"]                   # not read into the table at all
    # keep = ["age"]                    # or: read only these (and the target, id,
                                        # group, protected columns); not with drop

    [[protected]]                       # or protected = ["sex", {column = ...}]
    column = "age"
    bins = [25, 45, 65]                 # optional cut points: <25, 25-44, 45-64, 65+
    input = true                        # a model input too; default false
    special_category = false            # GDPR Art. 9 data; default false

    [[protected]]
    column = "race"                     # kept for the bias checks, not an input
    special_category = true

    [domains.source]
    filter = "workclass in [Private]"   # see workers.ml.filters
    description = "private-sector employees"
    has = "labels"                      # labels | data | nothing; default labels

    [derive.sex]                        # a categorical column mapped from another
    from = "personal_status"            # a file column (it may be dropped)
    map = { A91 = "male", A92 = "female" }  # every raw value present, mapped

    [values.status]                     # labels replace codes when loaded
    A11 = "overdrawn (below 0 DM)"

    [names]                             # what a reader sees for a column
    duration = "loan duration in months"

``[derive]``: a raw value the map lacks is an error listing the first
MAX_UNMAPPED_SHOWN; a missing cell stays missing; the name may not be a column of
the file. ``[values]``: the table holds the labels (a labelled column is
categorical) and codes without one as read; a filter may name the code or the
label (``evaluate(labels=...)``), and decision inputs are mapped from code to
label by the governance service. A label may not be another code or value of the
column. A header that repeats a name is refused only when the spec uses the name
and the columns differ; identical ones are read once and differing unused ones
not at all, each with a note in ``LoadedTable.notes``. When the header looks like
data, the duplicate and unknown-column errors add HEADERLESS_HINT. ``[names]``:
the name a person, officer or auditor reads for a column (``reader_name``); the
data, the model and the spec keep the file's name; two columns may not share one.

A protected attribute is read into the table for the bias checks, but it is a
model input only with ``input = true`` (measuring bias needs the attribute,
predicting does not: AI Act Art. 10(5)). A protected column that is not an
input cannot be named in ``immutable``, ``increase_only``, ``decrease_only`` or
``actionable``: those rules govern how a counterfactual may change the model's
inputs, and such a column is never one; the spec is refused with an error that
says so. ``special_category`` marks columns holding GDPR Art. 9 data (racial or
ethnic origin, health, ...): on a protected attribute with its flag, on any
other column in the top-level list (a column is marked in one place, not both).
Governance refuses to approve a version that reads such a column for solely
automated decisions unless the AI system records Art. 9(2)(a) or (g) and the
suitable measures (GDPR Art. 22(4)).

Stored specs: ``to_dict`` always writes ``input`` and ``special_category`` for
each protected attribute. ``from_dict`` reads a protected attribute without an
``input`` key as ``input = true``, which is what it meant when it was stored
(before the key existed every protected column was a model input), whereas
``parse_spec`` of TOML defaults it to false.

Unknown keys are errors at every level. ``has = "data"`` means the rows are in
the file but their labels must be withheld from training (unsupervised domain
adaptation); ``"nothing"`` means no data yet (domain generalisation), and such a
domain may omit its filter. A filter's columns may not be dropped.

The loaded frame holds the kept columns: features (float64 for numeric, pandas
categorical for categorical), the id and group columns as text, and the target as
a categorical of normalised labels. Cells are read as text (``keep_default_na``
off, so Diabetes's literal ``None`` is a category) and only ``""`` and the spec's
markers become missing. Nothing is evaluated: a cell like ``=cmd|'/C calc'!A0``
is kept verbatim as text.
"""

from __future__ import annotations

from workers.ml.dataspec.base import (
    HAS_CHOICES,
    HEADERLESS_HINT,
    MAX_COLUMNS,
    MAX_DERIVE_ENTRIES,
    MAX_DERIVES,
    MAX_DOMAINS,
    MAX_FILES,
    MAX_HEADER_BYTES,
    MAX_KEY_PARTS,
    MAX_LINE_BYTES,
    MAX_NESTING,
    MAX_PROTECTED,
    MAX_SCHEMA_VALUES,
    MAX_SPEC_BYTES,
    MAX_UNMAPPED_SHOWN,
    MAX_VALUE_CHARS,
    MAX_VALUE_LABELS,
    MISSING_GROUP,
    DatasetError,
    SpecError,
)
from workers.ml.dataspec.domains import domain_mask, validate_domains, value_labels
from workers.ml.dataspec.files import open_data
from workers.ml.dataspec.groups import protected_groups
from workers.ml.dataspec.load import check_headers, load_table
from workers.ml.dataspec.parts import (
    DeriveSpec,
    DomainSpec,
    FileSpec,
    ProtectedAttribute,
    TargetSpec,
)
from workers.ml.dataspec.prescan import prescan_toml
from workers.ml.dataspec.spec import DatasetSpec
from workers.ml.dataspec.specfile import load_spec, parse_spec, read_spec_text
from workers.ml.dataspec.split import split_indices
from workers.ml.dataspec.table import LoadedTable

__all__ = [
    "HAS_CHOICES",
    "HEADERLESS_HINT",
    "MAX_COLUMNS",
    "MAX_DERIVES",
    "MAX_DERIVE_ENTRIES",
    "MAX_DOMAINS",
    "MAX_FILES",
    "MAX_HEADER_BYTES",
    "MAX_KEY_PARTS",
    "MAX_LINE_BYTES",
    "MAX_NESTING",
    "MAX_PROTECTED",
    "MAX_SCHEMA_VALUES",
    "MAX_SPEC_BYTES",
    "MAX_UNMAPPED_SHOWN",
    "MAX_VALUE_CHARS",
    "MAX_VALUE_LABELS",
    "MISSING_GROUP",
    "DatasetError",
    "DatasetSpec",
    "DeriveSpec",
    "DomainSpec",
    "FileSpec",
    "LoadedTable",
    "ProtectedAttribute",
    "SpecError",
    "TargetSpec",
    "check_headers",
    "domain_mask",
    "load_spec",
    "load_table",
    "open_data",
    "parse_spec",
    "prescan_toml",
    "protected_groups",
    "read_spec_text",
    "split_indices",
    "validate_domains",
    "value_labels",
]
