"""The MCP conformance suite's server fixtures, with the official Python SDK (mcp >= 2).

The tools, resources and prompts the server scenarios of @modelcontextprotocol/conformance
ask for (each scenario's "Server Implementation Requirements"), served over streamable HTTP
by uvicorn on 127.0.0.1 at /mcp. It has no key check of its own: in tests/conformance/run.sh
nginx + `serve` guard it.

Usage: server.py PORT SEEN_FILE
As tests/serve/mcp/server.py: each request's `X-MCP-Key-Id` is appended to SEEN_FILE and
its `X-MCP-*` headers to SEEN_FILE.headers (tests/serve/mcp/seen.py).
"""

import asyncio
import base64
import io
import json
import os
import struct
import sys
import warnings
import wave
import zlib

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.types import (
    AudioContent,
    CallToolResult,
    ClientCapabilities,
    Completion,
    ElicitationCapability,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    PromptReference,
    ResourceTemplateReference,
    SamplingCapability,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve", "mcp"))
from seen import record_key_id  # noqa: E402  (tests/serve/mcp/seen.py)

# Logging, sampling and elicitation are deprecated as of 2026-07-28 (SEP-2577), but the
# suite's scenarios for 2025-06-18 / 2025-11-25 still test them.
warnings.filterwarnings("ignore", message=".*deprecated as of 2026-07-28.*")

port = int(sys.argv[1])
seen_file = sys.argv[2]


def _png_1x1_red() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))  # 1x1, RGB 8 bit
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))  # filter 0, one red pixel
            + chunk(b"IEND", b""))


def _wav_silence() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)  # 10 ms
    return out.getvalue()


PNG = _png_1x1_red()
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(_wav_silence()).decode()

server = MCPServer("mcp-key-manager-conformance", version="1.0.0")


def text(s: str) -> TextContent:
    return TextContent(type="text", text=s)


def image() -> ImageContent:
    return ImageContent(type="image", data=PNG_B64, mime_type="image/png")


def embedded(uri: str, mime_type: str, body: str) -> EmbeddedResource:
    return EmbeddedResource(type="resource",
                            resource=TextResourceContents(uri=uri, mime_type=mime_type, text=body))


# --- tools -------------------------------------------------------------------------------


@server.tool()
def test_simple_text() -> CallToolResult:
    """Returns one text content block."""
    return CallToolResult(content=[text("This is a simple text response for testing.")])


@server.tool()
def test_image_content() -> CallToolResult:
    """Returns one image content block (a 1x1 red PNG)."""
    return CallToolResult(content=[image()])


@server.tool()
def test_audio_content() -> CallToolResult:
    """Returns one audio content block (10 ms of silence, WAV)."""
    return CallToolResult(content=[AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")])


@server.tool()
def test_embedded_resource() -> CallToolResult:
    """Returns one embedded text resource."""
    return CallToolResult(content=[embedded("test://embedded-resource", "text/plain",
                                            "This is an embedded resource content.")])


@server.tool()
def test_multiple_content_types() -> CallToolResult:
    """Returns text, an image and an embedded resource."""
    return CallToolResult(content=[
        text("Multiple content types test:"),
        image(),
        embedded("test://mixed-content-resource", "application/json",
                 json.dumps({"test": "data", "value": 123})),
    ])


def session_of(headers) -> str:
    """The session a request belongs to (its Mcp-Session-Id)."""
    return (headers or {}).get("mcp-session-id", "")


# The level each session asked for with logging/setLevel; messages below it are not sent.
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
log_levels: dict[str, str] = {}


async def log(ctx: Context, level: str, message: str) -> None:
    wanted = log_levels.get(session_of(ctx.headers), "debug")
    if LEVELS.index(level) >= LEVELS.index(wanted):
        await ctx.log(level, message)


async def set_level(ctx, params: SetLevelRequestParams) -> EmptyResult:
    log_levels[session_of(ctx.request.headers)] = params.level
    return EmptyResult()


@server.tool()
async def test_tool_with_logging(ctx: Context) -> CallToolResult:
    """Sends three info log messages, 50 ms apart."""
    await log(ctx, "info", "Tool execution started")
    await asyncio.sleep(0.05)
    await log(ctx, "info", "Tool processing data")
    await asyncio.sleep(0.05)
    await log(ctx, "info", "Tool execution completed")
    return CallToolResult(content=[text("Tool with logging executed successfully")])


@server.tool()
async def test_tool_with_progress(ctx: Context) -> CallToolResult:
    """Reports progress 0, 50 and 100 of 100, 50 ms apart (if the request has a token)."""
    for step in (0, 50, 100):
        if step:
            await asyncio.sleep(0.05)
        await ctx.report_progress(progress=step, total=100)
    return CallToolResult(content=[text("Tool with progress executed successfully")])


@server.tool()
def test_error_handling() -> CallToolResult:
    """Always fails: a tool error (isError, the message as its text), not a JSON-RPC error."""
    raise ToolError("This tool intentionally returns an error for testing")


def client_has(ctx: Context, capability: ClientCapabilities) -> bool:
    return ctx.session.check_client_capability(capability)


@server.tool()
async def test_sampling(prompt: str, ctx: Context) -> CallToolResult:
    """Asks the client's LLM (sampling/createMessage) and returns its answer."""
    if not client_has(ctx, ClientCapabilities(sampling=SamplingCapability())):
        raise ToolError("the client does not support sampling")
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=text(prompt))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    answer = result.content.text if result.content.type == "text" else str(result.content)
    return CallToolResult(content=[text("LLM response: " + answer)])


async def elicit(ctx: Context, message: str, schema: dict) -> str:
    if not client_has(ctx, ClientCapabilities(elicitation=ElicitationCapability())):
        raise ToolError("the client does not support elicitation")
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    return "action=%s, content=%s" % (result.action, json.dumps(result.content or {}))


@server.tool()
async def test_elicitation(message: str, ctx: Context) -> CallToolResult:
    """Asks the user (elicitation/create) for a username and an email."""
    answer = await elicit(ctx, message, {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    })
    return CallToolResult(content=[text("User response: " + answer)])


@server.tool()
async def test_elicitation_sep1034_defaults(ctx: Context) -> CallToolResult:
    """Elicitation with a default for each primitive type (SEP-1034)."""
    answer = await elicit(ctx, "Please review and update the form fields with defaults", {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "User name", "default": "John Doe"},
            "age": {"type": "integer", "description": "User age", "default": 30},
            "score": {"type": "number", "description": "User score", "default": 95.5},
            "status": {"type": "string", "description": "User status",
                       "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "description": "Verification status",
                         "default": True},
        },
    })
    return CallToolResult(content=[text("Elicitation completed: " + answer)])


@server.tool()
async def test_elicitation_sep1330_enums(ctx: Context) -> CallToolResult:
    """Elicitation with the five enum shapes of SEP-1330."""
    answer = await elicit(ctx, "Please select options from the enum fields", {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "description": "Untitled single-select",
                               "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "description": "Titled single-select",
                             "oneOf": [{"const": "value1", "title": "First Option"},
                                       {"const": "value2", "title": "Second Option"},
                                       {"const": "value3", "title": "Third Option"}]},
            "legacyEnum": {"type": "string", "description": "Legacy titled enum",
                           "enum": ["opt1", "opt2", "opt3"],
                           "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "description": "Untitled multi-select",
                              "items": {"type": "string",
                                        "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {"type": "array", "description": "Titled multi-select",
                            "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                {"const": "value2", "title": "Second Choice"},
                                                {"const": "value3", "title": "Third Choice"}]}},
        },
    })
    return CallToolResult(content=[text("Elicitation completed: " + answer)])


# --- resources ---------------------------------------------------------------------------


@server.resource("test://static-text", name="static-text", mime_type="text/plain",
                 description="A static text resource")
def static_text() -> str:
    return "This is the content of the static text resource."


@server.resource("test://static-binary", name="static-binary", mime_type="image/png",
                 description="A static binary resource (a 1x1 red PNG)")
def static_binary() -> bytes:
    return PNG


@server.resource("test://template/{id}/data", name="template-data",
                 mime_type="application/json", description="Data for an id")
def template_data(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": "Data for ID: " + id})


@server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain",
                 description="A resource to subscribe to")
def watched() -> str:
    return "Watched resource content"


# The URIs each session subscribed to (nothing changes them, so no update is ever sent).
subscriptions: dict[str, set[str]] = {}


async def subscribe(ctx, params: SubscribeRequestParams) -> EmptyResult:
    subscriptions.setdefault(session_of(ctx.request.headers), set()).add(str(params.uri))
    return EmptyResult()


async def unsubscribe(ctx, params: UnsubscribeRequestParams) -> EmptyResult:
    subscriptions.get(session_of(ctx.request.headers), set()).discard(str(params.uri))
    return EmptyResult()


# --- prompts -----------------------------------------------------------------------------


@server.prompt()
def test_simple_prompt() -> list[UserMessage]:
    """A prompt without arguments."""
    return [UserMessage(text("This is a simple prompt for testing."))]


@server.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt with two required arguments."""
    return [UserMessage(text("Prompt with arguments: arg1='%s', arg2='%s'" % (arg1, arg2)))]


@server.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt with an embedded resource."""
    return [
        UserMessage(embedded(resourceUri, "text/plain", "Embedded resource content for testing.")),
        UserMessage(text("Please process the embedded resource above.")),
    ]


@server.prompt()
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt with an image."""
    return [UserMessage(image()), UserMessage(text("Please analyze the image above."))]


# --- completion --------------------------------------------------------------------------

CHOICES = {"arg1": ["paris", "park", "party"], "arg2": ["hello", "world"],
           "id": ["1", "2", "3", "123"]}


@server.completion()
async def complete(ref, argument, context):
    if isinstance(ref, (PromptReference, ResourceTemplateReference)):
        values = [v for v in CHOICES.get(argument.name, []) if v.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)
    return None


low = server._lowlevel_server  # MCPServer has no decorator for these three methods
low.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)

app = server.streamable_http_app()
uvicorn.run(record_key_id(app, seen_file), host="127.0.0.1", port=port, log_level="warning")
