"""Decisions as people read them: never a 0.9994 printed as 1.00, never a figure that seems to meet
the threshold it missed, and a residual's reason in words."""

from __future__ import annotations

from sortline.messages import DecisionMessage

MAX_DIGITS = 9


def confidence_text(p: float, threshold: float | None = None, min_digits: int = 4) -> str:
    """``p`` with as few decimals as tell it apart from 1 and stay on its side of ``threshold``.

    ``confidence_text(0.999418)`` is ``0.9994`` (``1.00`` would claim certainty);
    ``confidence_text(0.99949996, 0.9995)`` is ``0.99949996`` (``0.9995`` would seem to meet it).
    """
    for digits in range(min_digits, MAX_DIGITS + 1):
        text = f"{p:.{digits}f}"
        shown = float(text)
        looks_certain = p < 1.0 <= shown
        crosses = threshold is not None and (p < threshold) != (shown < threshold)
        if not (looks_certain or crosses):
            return text
    return f"{p:.{MAX_DIGITS}f}"


def threshold_text(threshold: float) -> str:
    """A calibrated threshold as the manifest holds it (at most six significant digits)."""
    return f"{threshold:.6g}"


def reason_text(decision: DecisionMessage) -> str:
    """Why an item went to residual ('' for any other bin), with the figures when the decision has them."""
    if not decision.residual_reason:
        return ""
    if decision.residual_detail:
        return f"{decision.residual_reason}: {decision.residual_detail}"
    return f"{decision.residual_reason}: {decision.material}"  # from a worker that gave no detail


def decision_confidence_text(decision: DecisionMessage) -> str:
    """A decision's confidence, kept on its side of the threshold it missed, if it missed one."""
    return confidence_text(decision.confidence, decision.residual_threshold)
