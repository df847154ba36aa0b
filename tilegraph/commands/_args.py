"""argparse types shared by the commands: a bad number is a one-line usage error (exit 2), never a traceback
deep inside numpy."""

from __future__ import annotations

import argparse
import math


def int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be at least {low}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


def float_at_least(low: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text} must be a finite number >= {low:g}")
        return value

    parse.__name__ = f"float>={low:g}"
    return parse


SEED = int_at_least(0)  # numpy's generators take seeds >= 0
POSITIVE = int_at_least(1)
