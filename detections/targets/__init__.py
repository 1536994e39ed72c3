"""The store targets of a Sigma rule: one module per query language, over one condition walk.

::

    walk           ConditionWalk and the value helpers every target shares (also the matcher's)
    sql            → a WHERE fragment for the SQLite store
    lucene_regex   RE2 regex syntax → Lucene regexp syntax
    elasticsearch  → query DSL for the Elasticsearch store
    query          a loaded rule as the Store's RuleQuery (compiled for whichever store runs it)

The in-process target, for the streaming engine, is :mod:`detections.matcher`.
"""
