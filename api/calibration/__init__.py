"""`turnjudge calibrate`: how far a judge agrees with human labels, and with another judge.

One job per module: `bands` (the five score bands), `labels` (loading and validating the
labelled answers), `metrics` (agreement statistics with bootstrap intervals), `runner`
(scoring the labels with the judges the graph uses and assembling the statistics) and
`report` (Markdown and JSON).
"""
