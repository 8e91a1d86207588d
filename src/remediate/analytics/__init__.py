"""History analytics: effectiveness scores, trends, ROI, recommendations, the monthly report.

Every report reads the store with SQL aggregation (GROUP BY, SUM(CASE ...),
bucketed times), never by loading each row into Python; how each figure is
computed, so it can be checked by hand, is in docs/analytics.md. Nothing is
imported here: `remediate serve` must not load reporting code.
"""
