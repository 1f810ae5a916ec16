"""Pure inspection logic, shared by the service, calibration, evaluation and the demo card.

No threads and no service state here: crops and tiles, prompt-set encoding and scoring,
decisions, thresholds, and the one function that turns frames into per-frame scores. The
line, the preview, ``prompts test``, the calibration gate and ``evaluate`` all call it, so
a verdict measured offline is the verdict the line produces.
"""
