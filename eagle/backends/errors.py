"""Errors raised by model backends. Each names the endpoint (or model) at fault and what to do."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A model backend could not answer. `endpoint` is the server URL involved, if any."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class EndpointUnavailableError(BackendError):
    """The server could not be reached, or dropped connections, on every attempt."""


class EndpointTimeoutError(BackendError):
    """The server did not answer within the timeout on every attempt."""


class ModelNotServedError(BackendError):
    """The endpoint does not serve the requested model name."""


class RequestRejectedError(BackendError):
    """The server answered 4xx: the request itself is wrong (retrying will not help)."""


class BadResponseError(BackendError):
    """The server answered 200 with a body that is not the expected JSON."""


class ResponseTooLargeError(BackendError):
    """The server's response body passed the size cap (not retried: it would answer the same)."""


class TokenBoundaryError(BackendError):
    """The teacher-forced answer tokens are not the prompt tokens at their positions.

    Happens when the answer prefix, rendered as text through the chat template, tokenises
    differently at the prompt/answer boundary than the ids the model generated; a score read at
    that position would be the probability of some other token, so it is an error, never a value.
    """


class PromptMismatchError(BackendError):
    """The prompt ids a server scored are not the ids it renders for the same chat messages.

    Scores are only comparable (across backends, across servers) when they are scores of the same
    token ids; a difference is reported, never scored through.
    """
