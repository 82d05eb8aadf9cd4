"""The deterministic evidence engine's building blocks: one concept per module.

anomalies (metric baselines and onsets), logtemplates (drain3 template mining),
topology (origin versus victims), changes (change correlation), ranking
(hypotheses), calibration (confidence), verify (prediction checks), chart and
report (what the report carries).
"""
