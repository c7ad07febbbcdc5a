"""The command relay leaves job gateways' replies alone: no database lookup, nothing logged."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import event

from agents.protocol import topic
from fleet.automation.link import new_request_id
from fleet.commands.relay import CommandRelay
from tests.services.postgres import migrated_context


def _reply(device_id: str, reply_id: str) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=topic(device_id, "cmd/reply").encode())
    message.payload = orjson.dumps({"id": reply_id, "status": "done", "output": {}})
    return message


def test_gateway_replies_cost_no_query_and_no_log_line(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = migrated_context(pg_url)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(ctx.engine, "before_cursor_execute", count)
    relay = CommandRelay(ctx)
    try:
        with caplog.at_level(logging.DEBUG, logger="fleet.commands.relay"):
            for _ in range(5):
                relay._on_message(None, None, _reply("dev-1", new_request_id()))
            assert statements == []
            assert caplog.records == []

            # A command id that matches nothing is still looked up and reported.
            relay._on_message(None, None, _reply("dev-1", "0" * 32))
        assert statements, "a command reply is looked up in the database"
        assert [r.getMessage() for r in caplog.records] == [
            "reply from dev-1 matches no open command ('" + "0" * 32 + "')"
        ]
    finally:
        relay.close()
        ctx.close()
