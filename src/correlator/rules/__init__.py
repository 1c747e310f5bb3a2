"""Rules: the YAML rule files, their checker, and the first-level stages compiled to numba.

* ``load_rules`` / ``load_rules_text`` read a file or directory into a ``RuleSet``
  (``model``), or raise ``RuleLoadError`` listing every ``Diagnostic``.
* ``FirstLevel`` runs classify, drop, maintenance, flap, threshold and enrich over
  a stream of batches and returns a ``FirstLevelOutcome`` per batch; it also
  compiles the second level's selectors (``FirstLevel.programs``).
* ``SecondLevel`` runs the inhibit and pair rules on what the first level passed.
* ``check_paths`` and ``test_rules`` give the text of ``correlator rules check``
  and ``correlator rules test``.
* ``Reference`` and ``SecondReference`` are the plain-Python interpreters the
  kernels are held to.
"""

from __future__ import annotations

from correlator.rules.check import check_paths, test_rules
from correlator.rules.first_level import FirstLevel, FirstLevelOutcome
from correlator.rules.load import load_rules, load_rules_text
from correlator.rules.model import FATE_NAMES, SECOND_FATE_NAMES, SIGNIFICANCE_NAMES, RuleSet
from correlator.rules.reference import Reference
from correlator.rules.second_level import SecondLevel, SecondLevelOutcome
from correlator.rules.second_reference import SecondReference
from correlator.rules.source import Diagnostic, RuleLoadError
from correlator.rules.tables import LabelColumns, MatchProgram

__all__ = [
    "FATE_NAMES",
    "SECOND_FATE_NAMES",
    "SIGNIFICANCE_NAMES",
    "Diagnostic",
    "FirstLevel",
    "FirstLevelOutcome",
    "LabelColumns",
    "MatchProgram",
    "Reference",
    "RuleLoadError",
    "RuleSet",
    "SecondLevel",
    "SecondLevelOutcome",
    "SecondReference",
    "check_paths",
    "load_rules",
    "load_rules_text",
    "test_rules",
]
