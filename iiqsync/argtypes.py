"""Argument types for the command lines (iiqsync's and the simulator's): a bad
value is an argparse error that names the option, not a traceback later."""

from __future__ import annotations

import argparse


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


def page_size(text: str) -> int:
    """A page size IIQ serves: 1 to 1000."""
    value = count(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1000")
    return value


def positive(text: str) -> float:
    """A number above 0 (hours, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value
