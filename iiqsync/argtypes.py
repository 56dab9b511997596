"""Argument types for the command lines (iiqsync's and the simulator's): a bad
value is an argparse error that names the option, not a traceback later."""

from __future__ import annotations

import argparse
import math


def count(text: str) -> int:
    """A whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


def at_least_one(text: str) -> int:
    """A whole number, 1 or more."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def page_size(text: str) -> int:
    """A page size IIQ serves: 1 to 1000."""
    value = count(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1000")
    return value


def _number(text: str) -> float:
    """A finite number: float() also takes nan and inf, which no knob means."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive(text: str) -> float:
    """A number above 0 (hours, seconds)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def at_least_zero(text: str) -> float:
    """A number, 0 or more (milliseconds, seconds, requests per second)."""
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is below 0")
    return value


def fraction(text: str) -> float:
    """A share of requests, from 0 (none) to 1 (every one)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (0.1 is one in ten)")
    return value


def port(text: str) -> int:
    """A TCP port to listen on: 1 to 65535, or 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1 to 65535, or 0 for "
                                         "any free one)")
    return value


def words_of(choices: tuple[str, ...]):
    """A comma-separated list of some of ``choices`` (at least one), as a tuple."""

    def words(text: str) -> tuple[str, ...]:
        chosen = tuple(w.strip() for w in text.split(",") if w.strip())
        odd = [w for w in chosen if w not in choices]
        if odd or not chosen:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected one or more of {', '.join(choices)}, comma separated")
        return chosen

    words.__name__ = "list"  # argparse names the type in some messages
    return words
