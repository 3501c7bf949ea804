"""Test kits for code that plugs into archsearch (like ``optuna.testing``): imported by tests, never by the library.

* :mod:`.blocks` -- the block contract kit: every registered block type's own small examples
  (``Block.examples()``) and the behavioural checks each must pass;
* :mod:`.macs` -- an independent MAC count of a built module with fvcore under archsearch's MAC conventions
  (needs the ``test`` extra: ``pip install -e ".[test]"``).
"""
