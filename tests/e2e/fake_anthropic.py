"""A fake Anthropic Messages API on loopback that scripts one Claude Code session.

Claude Code (2.1.x) streams `POST /v1/messages?beta=true`. Each answer is chosen by how many
assistant turns the request already holds, so a retried request gets the same answer. The
script: Write a file, Edit it, run `git commit` and `gh pr create` in Bash, then a final text.
Every answer reports token usage with cache reads and cache creation. `fail_first` answers
that many requests with 529 overloaded errors first (to make Claude Code retry and, when its
retries run out, emit `api_error`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

HELLO = "def greet(name):\n    return 'Hello, ' + name\n\n\n" + "\n".join(
    f"# line {i}" for i in range(7)
)
#: Lines the script makes Claude Code write and change: Write adds len(HELLO lines); the Edit
#: replaces 2 lines with 3.
WRITE_LINES = len(HELLO.splitlines())
EDIT_OLD = "def greet(name):\n    return 'Hello, ' + name"
EDIT_NEW = (
    "def greet(name, punctuation='!'):\n    message = 'Hello, ' + name\n"
    "    return message + punctuation"
)
BASH = "git add -A && git commit -q -m 'Add hello.py' && gh pr create --title hello --body hello"


@dataclass(frozen=True)
class Turn:
    kind: str  # write | edit | bash | final
    usage: dict[str, int]


def default_script() -> list[Turn]:
    """Four model calls with distinct token counts, including cache reads and creation."""
    return [
        Turn(
            "write",
            {
                "input_tokens": 1260,
                "cache_creation_input_tokens": 3777,
                "cache_read_input_tokens": 7554,
                "output_tokens": 111,
            },
        ),
        Turn(
            "edit",
            {
                "input_tokens": 1278,
                "cache_creation_input_tokens": 3830,
                "cache_read_input_tokens": 7661,
                "output_tokens": 97,
            },
        ),
        Turn(
            "bash",
            {
                "input_tokens": 1296,
                "cache_creation_input_tokens": 3883,
                "cache_read_input_tokens": 7767,
                "output_tokens": 58,
            },
        ),
        Turn(
            "final",
            {
                "input_tokens": 1307,
                "cache_creation_input_tokens": 3915,
                "cache_read_input_tokens": 7831,
                "output_tokens": 39,
            },
        ),
    ]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass
class FakeAnthropic:
    workdir: str = ""
    delay: float = 0.2
    fail_first: int = 0
    script: list[Turn] = field(default_factory=default_script)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        turns = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        self.requests.append(
            {
                "model": body.get("model"),
                "turns": turns,
                "retry": request.headers.get("x-stainless-retry-count"),
            }
        )
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                status=529,
            )
        await asyncio.sleep(self.delay)
        turn = self.script[min(turns, len(self.script) - 1)]
        return await self._stream(request, body.get("model", "claude-opus-5-5"), turn)

    def _tool(self, turn: Turn) -> tuple[str, dict[str, Any]] | None:
        path = f"{self.workdir}/hello.py"
        if turn.kind == "write":
            return "Write", {"file_path": path, "content": HELLO}
        if turn.kind == "edit":
            return "Edit", {"file_path": path, "old_string": EDIT_OLD, "new_string": EDIT_NEW}
        if turn.kind == "bash":
            return "Bash", {"command": BASH, "description": "Commit and open a PR"}
        return None

    async def _stream(self, request: web.Request, model: str, turn: Turn) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "request-id": f"req_fake_{next(self._ids)}",
            }
        )
        await response.prepare(request)
        n = next(self._ids)
        usage = {**turn.usage, "output_tokens": 1}
        await response.write(
            _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake_{n}",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": usage,
                    },
                },
            )
        )
        tool = self._tool(turn)
        if tool is None:
            block = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": "Done: hello.py written, edited and committed."}
        else:
            block = {"type": "tool_use", "id": f"toolu_fake_{n}", "name": tool[0], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(tool[1])}
        await response.write(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        await response.write(
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
        await response.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        await response.write(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": "end_turn" if tool is None else "tool_use",
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": turn.usage["output_tokens"]},
                },
            )
        )
        await response.write(_sse("message_stop", {"type": "message_stop"}))
        await response.write_eof()
        return response

    # -- running in a thread (the tests' clients block) -------------------------------------

    def __enter__(self) -> FakeAnthropic:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> web.AppRunner:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/messages", self.messages)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            return runner

        self._runner = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
