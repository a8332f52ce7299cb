"""A model server on loopback: a real HTTP server with the OpenAI chat-completions interface, in a thread. It
records every request and answers from a script of replies, then as the rule-based agents would (`answer`)."""
import json
import re
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from research.agents import AGENTS, default_prompt

# The provider's instruction names the agent's output contract; the rule-based answer reads the agent from it.
CONTRACT_NAMED = re.compile(r"output contract agent_([A-Za-z0-9_]+)_output_v\d+")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: `body` as is (None: what `answer` plays, as a chat completion), after `delay` s."""

    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    """One request as the server read it: headers by lower-case name, the body parsed (None if not JSON) and as
    received (`raw`, for a signature over its bytes)."""

    path: str
    headers: dict
    body: dict | None
    raw: bytes = b""


def chat_completion(content: str, *, model: str = "test-model") -> bytes:
    """The body of a successful chat completion whose message is `content`."""
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }).encode()


def rule_based_answer(body: dict) -> dict:
    """What the rule-based agent named in the system message outputs on the inputs in the user message."""
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    agent_id = CONTRACT_NAMED.search(system).group(1)
    return AGENTS[agent_id].run(json.loads(user), prompt=default_prompt(agent_id))


class ModelServer:
    """Scripted replies are used up one per request, in order; then every request gets `answer(body)` (a dict is
    sent as JSON content, a str as is)."""

    def __init__(self, replies=(), answer=rule_based_answer):
        self.replies = list(replies)
        self.answer = answer
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.port = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _take(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            reply = self.replies.pop(0) if self.replies else Reply()
        if reply.body is None and reply.status == 200:
            content = self.answer(received.body)
            reply = Reply(body=chat_completion(content if isinstance(content, str) else json.dumps(content)),
                          delay=reply.delay, headers=reply.headers)
        return reply


def _handler_for(server: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            reply = server._take(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, raw))
            time.sleep(reply.delay)
            payload = reply.body or b""
            try:
                self.send_response(reply.status)
                for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a timeout test): nobody is left to answer

        def log_message(self, format, *args):
            pass  # the tests read `requests`, not stderr

    return Handler


@contextmanager
def a_model_server(*replies: Reply, answer=rule_based_answer):
    """A ModelServer listening on 127.0.0.1 (a free port) for the duration of the block."""
    server = ModelServer(replies, answer)
    # A short poll keeps shutdown quick: it waits for the loop to look again.
    thread = threading.Thread(target=server._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()


def a_closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
