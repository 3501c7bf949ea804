"""Test kits for code that plugs into archsearch (like ``optuna.testing``): imported by tests, never by the library.

* :mod:`.blocks` -- the block contract kit: every registered block type's own small examples
  (``Block.examples()``) and the behavioural checks each must pass;
* :mod:`.macs` -- an independent MAC count of a built module with fvcore under archsearch's MAC conventions
  (needs the ``test`` extra: ``pip install -e ".[test]"``);
* :mod:`.studies` -- study files for tests: a tiny sweep that trains in seconds (any key overridden), and a
  synthetic study for report tests;
* :mod:`.ledger` -- synthetic ledgers whose rows are built from the attribute list a trial stores
  (:data:`archsearch.study.record.TRIAL_ATTRS`), so a renamed attribute breaks the tests that read it.
"""
