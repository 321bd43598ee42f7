"""Causal tracing (ROME) and activation patching: setting a trace up (``setup``: subject, noise, target),
the engine that computes the restoration grid from cached corrupted states (``engine``), the results and
their streams (``results``), and the average over many facts (``average``)."""
