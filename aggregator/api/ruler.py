"""The Mimir/Cortex ruler configuration API, so Grafana's alerting UI edits global rules.

    GET    /config/v1/rules                      every namespace: {namespace: [group, ...]}
    GET    /config/v1/rules/{namespace}          one namespace
    GET    /config/v1/rules/{namespace}/{group}  one group
    POST   /config/v1/rules/{namespace}          create or replace a group (YAML body)
    DELETE /config/v1/rules/{namespace}/{group}  delete a group
    DELETE /config/v1/rules/{namespace}          delete a namespace

Answers are Mimir's: YAML for reads, 202 with a JSON success envelope for
writes, 404 with `no rule groups found`, `group does not exist` or `group
namespace does not exist`, 400 with every validation problem. A group saved
here is checked like a rule file, stored in the data directory, and running
(with the state of its unchanged alerts kept) when the answer comes back.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from aggregator.api.context import RULES
from aggregator.errors import NotReady
from alerting.loader import RulesLoadError
from alerting.rulefile import RuleFileError, dump_yaml, group_to_dict, parse_group

YAML = "application/yaml"
MAX_BODY_BYTES = 1 << 20
_ACCEPTED = orjson.dumps({"status": "success", "data": None, "errorType": "", "error": ""})


async def handle_list(request: web.Request) -> web.Response:
    namespaces = request.app[RULES].namespaces()
    if not namespaces:
        return _text(404, "no rule groups found")
    return _yaml({ns: [group_to_dict(g) for g in groups] for ns, groups in namespaces.items()})


async def handle_namespace(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    groups = request.app[RULES].namespace_groups(namespace)
    if not groups:
        return _text(404, "no rule groups found")
    return _yaml({namespace: [group_to_dict(g) for g in groups]})


async def handle_group(request: web.Request) -> web.Response:
    namespace = request.match_info["namespace"]
    name = request.match_info["group"]
    for group in request.app[RULES].namespace_groups(namespace) or []:
        if group.name == name:
            return _yaml(group_to_dict(group))
    return _text(404, "group does not exist")


async def handle_set_group(request: web.Request) -> web.Response:
    await _wait_started(request)
    namespace = request.match_info["namespace"]
    body = await request.content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _text(413, f"rule group larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        group = parse_group(text, file=namespace, where=f"namespace {namespace!r}")
    except UnicodeDecodeError:
        return _text(400, "unable to decode rule group: not UTF-8")
    except RuleFileError as exc:
        return _text(400, ", ".join(exc.problems))
    try:
        await request.app[RULES].set_group(namespace, group)
    except RulesLoadError as exc:
        return _text(400, ", ".join(exc.problems))
    return _accepted()


async def handle_delete_group(request: web.Request) -> web.Response:
    await _wait_started(request)
    namespace = request.match_info["namespace"]
    name = request.match_info["group"]
    if not await request.app[RULES].delete_group(namespace, name):
        return _text(404, "group does not exist")
    return _accepted()


async def handle_delete_namespace(request: web.Request) -> web.Response:
    await _wait_started(request)
    namespace = request.match_info["namespace"]
    if not await request.app[RULES].delete_namespace(namespace):
        return _text(404, "group namespace does not exist")
    return _accepted()


async def _wait_started(request: web.Request) -> None:
    """Edits wait for the ruler to run (a few seconds at most after storage opens)."""
    try:
        async with asyncio.timeout(START_WAIT_S):
            await request.app[RULES].wait_started()
    except TimeoutError:
        raise NotReady("the ruler is starting: rule groups can be edited once it runs") from None


START_WAIT_S = 10.0


def _yaml(data: object) -> web.Response:
    return web.Response(text=dump_yaml(data), content_type=YAML)


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def _accepted() -> web.Response:
    return web.Response(status=202, body=_ACCEPTED, content_type="application/json")
