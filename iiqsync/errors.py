"""Every error iiqsync raises, grouped by what the operator should do about it.

``RetriableError`` is the only base that Celery's ``autoretry_for`` lists: a
passing fault that another attempt may clear. ``FatalError`` stops the run at
once (retrying would only repeat it). ``BadRecordError`` concerns one item and is
counted, never fatal to the run.
"""

from __future__ import annotations

# Why a run stopped by Ctrl-C or SIGTERM (a cron or systemd timeout) failed, as its
# record says, whatever step it was in.
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


class IIQSyncError(Exception):
    """Root of every iiqsync error."""


class RetriableError(IIQSyncError):
    """A passing fault: 429, 5xx, a timeout, a cut-off body, a lost connection.

    ``retry_after`` is the delay in seconds that the server asked for, if any.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class DatabaseUnavailableError(RetriableError):
    """The target database cannot be reached (refused, down, wrong host)."""


class UnreachableError(RetriableError):
    """IIQ could not be reached at all (connection refused, no route, unknown name).

    ``reason`` says why in a few words ("name does not resolve"). Retried like an
    outage once a run has started; at a run's first request it is an
    ``InstanceUnreachableError`` instead."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


class WebPageError(RetriableError):
    """IIQ answered 200 with a web page (HTML or text), not JSON: a maintenance page or
    a proxy's error page, retried like an outage. At a run's first request the same
    answer, again and again, is an ``InstanceUnreachableError`` instead: what
    ``[IncidentIQ] Instance`` names is a web site, not the Incident IQ API.

    ``page`` names the page in a few words (its title, or how it starts)."""

    def __init__(self, message: str, page: str):
        super().__init__(message)
        self.page = page


class NotHttpError(RetriableError):
    """Something accepted the connection but did not answer with HTTP (it closed or
    reset the connection, or sent what no HTTP server sends): a connection a load
    balancer dropped, retried like an outage. At a run's first request the same
    answer, again and again, is an ``InstanceUnreachableError`` instead: what
    ``[IncidentIQ] Instance`` names is some other server (SSH, Redis, PostgreSQL).

    ``reason`` says what came back, in a few words."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class RateLimitedError(RetriableError):
    """IIQ answered 429 (or 503 with Retry-After): slow down and try again."""


class FatalError(IIQSyncError):
    """Retrying cannot help: fix the setting or the data, then run again."""


class ConfigError(FatalError):
    """One or more configuration problems, each naming the key at fault."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"configuration has {len(self.problems)} problem(s):\n{lines}")


class ForeignTableError(FatalError):
    """A ``[Tables]`` setting names a table that exists and is not the entity's:
    syncing into it would replace rows that belong to something else."""


class ColumnTypeError(FatalError):
    """A column of an existing final table is of a type that would lose or reject
    what iiqsync stores, and the database refused to change it (a view depends on
    it, the old values do not convert): nothing was swapped."""


class AuthError(FatalError):
    """IIQ refused the token (401) or its user lacks permission (403)."""


class CertificateError(FatalError):
    """IIQ's TLS certificate could not be verified; retrying cannot change that."""


class InstanceUnreachableError(FatalError):
    """A run's first request could not reach IIQ at all (the name does not resolve,
    nothing listens on the port), or what answered it is not IIQ (a web site: a page
    where IIQ's JSON should be, or 404, 405, 501 with a page; a server that does not
    speak HTTP): ``[IncidentIQ] Instance`` is most likely wrong, and retrying for
    minutes would only delay saying so. The same faults later in a run are an
    ``UnreachableError``, a ``WebPageError`` or a ``NotHttpError``, retried as an
    outage, or an ``ApiError``."""


class ApiError(FatalError):
    """IIQ answered in a way no retry will change (404, 400, a changed contract)."""


class IncompleteRunError(FatalError):
    """The staged rows do not account for what IIQ reported; nothing was swapped."""


class RunEndedError(FatalError):
    """The run was ended elsewhere while this step ran (swept as abandoned, or failed
    by its error callback); what this step did was rolled back."""


class LockedError(IIQSyncError):
    """Another run of the same entity holds the lock; this one was skipped."""


class BadRecordError(IIQSyncError):
    """One item could not be read (e.g. it has no primary key); it is skipped."""
