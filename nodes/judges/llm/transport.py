"""The judge's HTTP hot path: a pre-serialised chat-completions body POSTed over aiohttp.

The openai SDK's `post` builds an httpx request per call (URL merging, header objects, the
JSON encoding of a body whose tool schema never changes) and hands it to its aiohttp
transport, which converts it back: ~0.6 ms of Python per judge call, a fifth of the client
cost of the whole evaluation path (issue 9; the SDK path measured 3.7-4.3 ms per call, this
one 2.8-3.4 ms, 20 sessions x 8 turns). Here the request is what the SDK would send, built
from the same SDK client: its base URL, its headers (authentication, organization, project,
user agent) and its query parameters, taken once. Failures come out as the SDK's own
exceptions: a failed status becomes the `APIStatusError` subclass the SDK raises for it
(`RateLimitError` with its Retry-After header, `BadRequestError`, ...), built by the SDK
client itself, and a transport failure an `APIConnectionError`, so the retry policy
(`nodes.judges.llm.retry`) and the limiter treat both paths alike.

The session is created lazily, in the event loop of the first request, with no connection
limit of its own: the judge's limiter (LLM_MAX_CONCURRENCY) bounds the requests in flight.
Like the SDK's transport it honours HTTP(S)_PROXY / NO_PROXY, but reads them once, when
built: aiohttp's `trust_env` looks the proxy (and ~/.netrc) up again for every request, in a
worker thread (measured: 4% of the client's CPU on 20 x 8).
"""

from __future__ import annotations

from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx2
import openai
from openai import AsyncOpenAI

#: The path of the chat-completions endpoint, relative to the client's base URL.
PATH = "chat/completions"


class ChatCompletions:
    """POST /chat/completions of one SDK client's server; close with `aclose`."""

    def __init__(self, client: AsyncOpenAI) -> None:
        """Take the client's URL, headers (with its API key's bearer) and query parameters."""
        self._client = client
        self.url = str(client.base_url.join(PATH))  # the SDK keeps a trailing "/" on it
        headers = {**client.default_headers, **client.auth_headers}
        self.headers = {name: value for name, value in headers.items() if isinstance(value, str)}
        self.query = {
            name: value for name, value in client.default_query.items() if isinstance(value, str)
        }
        self.proxy = _proxy_for(self.url)
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def supports(client: AsyncOpenAI) -> bool:
        """Whether the client authenticates with a plain API key (a bearer header).

        Clients that authenticate per request (workload identity, a provider runtime) give
        no header here: their requests must go through the SDK (`create`).
        """
        return "Authorization" in client.auth_headers

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None),  # each attempt has its own timeout
            )
        return self._session

    async def post(self, body: bytes) -> bytes:
        """Send the JSON `body`; return the reply's body (2xx) or raise the SDK's exception.

        Raises:
            openai.APIStatusError: The server answered 4xx/5xx (the status's subclass).
            openai.APIConnectionError: No reply (refused, reset, DNS...).
            TimeoutError: aiohttp's own socket timeouts.
        """
        try:
            async with self._open().post(
                self.url, data=body, params=self.query or None, proxy=self.proxy
            ) as response:
                content = await response.read()
                status, headers = response.status, list(response.headers.items())
        except TimeoutError:
            raise
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(request=self._request()) from exc
        if status >= 400:
            request = self._request()
            reply = httpx2.Response(status, headers=headers, content=content, request=request)
            raise self._client._make_status_error_from_response(reply)
        return content

    def _request(self) -> httpx2.Request:
        """The request as the SDK's exceptions describe it (built only on failure)."""
        return httpx2.Request("POST", self.url, params=self.query or None)

    async def aclose(self) -> None:
        """Close the aiohttp session (if a request opened one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _proxy_for(url: str) -> str | None:
    """The proxy the environment sets for `url` (HTTP(S)_PROXY unless NO_PROXY matches)."""
    parts = urlsplit(url)
    if proxy_bypass(parts.hostname or ""):
        return None
    return getproxies().get(parts.scheme)
