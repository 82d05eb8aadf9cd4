"""The live drill (issue #16): a small real shop breaks, Prometheus alerts, ``pm serve`` names the culprit.

``drill/shop`` holds the shop's services and its load generator; ``drill/stack.py`` starts and stops
the processes (the shop, Prometheus, Alertmanager, ``pm serve``); ``drill/faults.py`` says what each
fault does and what the truth is; ``drill/run.py`` runs one fault or all of them and prints figures.
Nothing here is imported by the product's rooms.
"""
