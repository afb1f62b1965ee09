"""Gemini `generateContent` / `streamGenerateContent`, plain and Code Assist-wrapped.

Code Assist (Gemini CLI's login mode, `/v1internal:...`) wraps the same bodies:
requests as `{"model", "project", "user_prompt_id", "request": {...}}` and every
response or stream chunk as `{"response": {...}}`; both are unwrapped here.

A content's text parts are joined with nothing between them: a stream cuts text into
arbitrary parts and Gemini's own SDKs read `text` as the concatenation, so this is the
only join under which a streamed reply and its later copy in the history read the same.
Roles: `model` reads as `assistant`, the old `function` role as `tool`. Function
responses stay on the turn of the content that carried them (a `user` one in practice);
calls and responses without an `id` use the function name as their id, which is how
Gemini pairs them.
"""

from __future__ import annotations

import re
from typing import Any

from engram.wire.block import remove_block
from engram.wire.common import (
    ParsedRequest,
    ParsedResponse,
    TurnBuilder,
    as_dict,
    as_list,
    as_str,
    canonical_arguments,
    canonical_json,
    error_text,
    first_dict,
    join_text,
    make_usage,
    opt_int,
    opt_str,
    placeholder,
)
from engram.wire.model import ToolCall, ToolResult, Turn, Usage
from engram.wire.sse import JSONStream

_MODEL_IN_PATH = re.compile(r"/models/([^/:]+):")
_ROLES = {"model": "assistant", "function": "tool"}
_PROMPT_ID_SEPARATOR = "########"  # Gemini CLI's user_prompt_id: <session>########<n>


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """Gemini's REST API accepts both spellings of every field."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _unwrap_request(body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    inner = body.get("request")
    if not isinstance(inner, dict) or "contents" in body:
        return body, None
    session = opt_str(inner.get("session_id"))
    if session is None:
        prompt_id = as_str(body.get("user_prompt_id"))
        if _PROMPT_ID_SEPARATOR in prompt_id:
            session = prompt_id.split(_PROMPT_ID_SEPARATOR, 1)[0] or None
    return inner, session


def parse_request(body: dict[str, Any], endpoint: str = "") -> ParsedRequest:
    inner, session = _unwrap_request(body)
    model = as_str(body.get("model")) or as_str(inner.get("model"))
    if not model:
        match = _MODEL_IN_PATH.search(endpoint)
        model = match.group(1) if match else ""
    config = as_dict(_get(inner, "generationConfig", "generation_config"))
    schema = _get(config, "responseSchema", "response_schema") or _get(
        config, "responseJsonSchema", "response_json_schema"
    )
    turns: list[Turn] = []
    for content in as_list(inner.get("contents")):
        turn = _content_turn(content)
        if turn is not None:
            turns.append(turn)
    return ParsedRequest(
        system=system_text(_get(inner, "systemInstruction", "system_instruction")),
        turns=turns,
        model=model.removeprefix("models/") or None,
        stream="streamgeneratecontent" in endpoint.lower(),
        session_id=session,
        max_tokens=opt_int(_get(config, "maxOutputTokens", "max_output_tokens")),
        structured_only=bool(schema) and not inner.get("tools"),
    )


def system_text(instruction: Any) -> str:
    if isinstance(instruction, str):
        return remove_block(instruction)
    parts = as_list(as_dict(instruction).get("parts"))
    return join_text(remove_block(as_str(as_dict(part).get("text"))) for part in parts)


def _content_turn(content: Any) -> Turn | None:
    if isinstance(content, str):
        return Turn(role="user", text=content)
    content = as_dict(content)
    if not content:
        return None
    role = as_str(content.get("role")) or "user"
    role = _ROLES.get(role, role)
    builder = parts_builder(content.get("parts"))
    if role == "system":
        text = remove_block(join_text(builder.texts, ""))
        return Turn(role="system", text=text) if text else None
    return builder.build(role, sep="")


def parts_builder(parts: Any) -> TurnBuilder:
    builder = TurnBuilder()
    for part in as_list(parts):
        if isinstance(part, str):
            builder.texts.append(part)
            continue
        part = as_dict(part)
        if "text" in part:
            target = builder.thinking if part.get("thought") is True else builder.texts
            target.append(as_str(part.get("text")))
        elif (call := _get(part, "functionCall", "function_call")) is not None:
            call = as_dict(call)
            name = as_str(call.get("name"))
            builder.calls.append(
                ToolCall(
                    id=as_str(call.get("id")) or name,
                    name=name,
                    arguments=canonical_arguments(call.get("args")),
                )
            )
        elif (response := _get(part, "functionResponse", "function_response")) is not None:
            response = as_dict(response)
            name = as_str(response.get("name"))
            text, is_error = _response_text(response.get("response"))
            builder.results.append(
                ToolResult(
                    call_id=as_str(response.get("id")) or name, content=text, is_error=is_error
                )
            )
        else:
            text = _non_text(part)
            if text:
                # Parts are joined with nothing; keep a placeholder off the text before it.
                if builder.texts and not builder.texts[-1].endswith("\n"):
                    text = "\n" + text
                builder.texts.append(text)
    return builder


def _response_text(response: Any) -> tuple[str, bool]:
    """Gemini CLI answers `{"output": text}` or `{"error": text}`; others: any object."""
    if isinstance(response, str):
        return response, False
    obj = as_dict(response)
    if isinstance(obj.get("output"), str):
        return obj["output"], False
    if isinstance(obj.get("error"), str):
        return obj["error"], True
    return canonical_json(response), False


def _non_text(part: dict[str, Any]) -> str:
    inline = _get(part, "inlineData", "inline_data")
    if inline is not None:
        mime = as_str(_get(as_dict(inline), "mimeType", "mime_type"))
        return placeholder("image") if mime.startswith("image/") else placeholder("file", mime)
    file = _get(part, "fileData", "file_data")
    if file is not None:
        return placeholder("file", as_str(_get(as_dict(file), "fileUri", "file_uri")))
    if _get(part, "executableCode", "executable_code") is not None:
        return placeholder("code")
    if _get(part, "codeExecutionResult", "code_execution_result") is not None:
        return placeholder("code result")
    return ""


def _unwrap_response(value: Any) -> dict[str, Any]:
    obj = as_dict(value)
    inner = obj.get("response")
    if isinstance(inner, dict) and "candidates" not in obj:
        return inner
    return obj


def usage_of(usage: Any) -> Usage:
    u = as_dict(usage)
    output = (opt_int(_get(u, "candidatesTokenCount", "candidates_token_count")) or 0) + (
        opt_int(_get(u, "thoughtsTokenCount", "thoughts_token_count")) or 0
    )
    return make_usage(
        _get(u, "promptTokenCount", "prompt_token_count"),
        output,
        _get(u, "cachedContentTokenCount", "cached_content_token_count"),
        prompt_includes_cache=True,
    )


def parse_response_json(body: Any) -> ParsedResponse:
    if isinstance(body, list):  # a JSON-array stream that arrived whole
        return parse_response_stream(JSONStream(items=[("", x) for x in body], done=True))
    obj = _unwrap_response(body)
    error = error_text(obj)
    candidate = first_dict(obj.get("candidates"))
    if error is not None and not candidate:
        return ParsedResponse(error=error)
    content = as_dict(candidate.get("content"))
    feedback = as_dict(_get(obj, "promptFeedback", "prompt_feedback"))
    return ParsedResponse(
        reply=parts_builder(content.get("parts")).build("assistant", sep="") if candidate else None,
        usage=usage_of(_get(obj, "usageMetadata", "usage_metadata")),
        stop_reason=opt_str(_get(candidate, "finishReason", "finish_reason"))
        or opt_str(_get(feedback, "blockReason", "block_reason")),
        model=opt_str(_get(obj, "modelVersion", "model_version")),
    )


def parse_response_stream(stream: JSONStream) -> ParsedResponse:
    """Concatenate the chunks' parts into one candidate, then read it as a JSON reply."""
    parts: list[Any] = []
    finish: Any = None
    usage: Any = None
    model: Any = None
    error: str | None = None
    seen = False
    for _, data in stream.items:
        chunk = _unwrap_response(data)
        if "error" in chunk and "candidates" not in chunk:
            error = error_text(chunk)
            continue
        candidate = first_dict(chunk.get("candidates"))
        if candidate:
            seen = True
            parts.extend(as_list(as_dict(candidate.get("content")).get("parts")))
            finish = _get(candidate, "finishReason", "finish_reason") or finish
        usage = _get(chunk, "usageMetadata", "usage_metadata") or usage
        model = _get(chunk, "modelVersion", "model_version") or model
    merged: dict[str, Any] = {"usageMetadata": usage, "modelVersion": model}
    if seen:
        merged["candidates"] = [
            {"content": {"role": "model", "parts": parts}, "finishReason": finish}
        ]
    result = parse_response_json(merged)
    result.stream = True
    result.truncated = stream.truncated or not finish
    result.error = error
    return result
