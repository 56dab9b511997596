"""A fake Incident IQ API over a generated district, for tests and demos.

``District`` generates the data (deterministic per seed, lazy, able to drift);
``SimulatorServer`` serves it over HTTP like IIQ does; ``main`` is the
``iiqsync fake-iiq`` command.
"""

from .district import District, SortNotSupported
from .server import DEFAULT_TOKEN, Knobs, SimulatorServer, main

__all__ = ["DEFAULT_TOKEN", "District", "Knobs", "SimulatorServer", "SortNotSupported", "main"]
