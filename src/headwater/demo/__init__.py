"""The demo: Headwater's whole loop on generated data, step by step (``headwater demo``)."""

from __future__ import annotations

from headwater.demo.loop import (
    MARKER,
    STEPS,
    DemoListener,
    DemoResult,
    DemoSize,
    StepReport,
    run_demo,
)

__all__ = ["MARKER", "STEPS", "DemoListener", "DemoResult", "DemoSize", "StepReport", "run_demo"]
