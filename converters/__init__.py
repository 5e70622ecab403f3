"""Offline pipeline: teacher maps, training, Fisher pruning, int8 TFLite export, evaluation.

TensorFlow lives here and never in the ``edgecrop`` runtime package.
"""
