"""amqtt 0.12.1 adjusted for the demo broker; imported only when the embedded broker starts."""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class OpenDoorAuth(BaseAuthPlugin):
    """Admit every client without marking it anonymous.

    amqtt's own anonymous mode also drops persistent sessions at disconnect and queues nothing
    for them, which would lose QoS 1 messages while ingest or a device reconnects.
    """

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Session) -> bool:
        return True


class OwnSubscriptionsBroker(Broker):
    """amqtt's broker, sending a connecting client only the retained messages it subscribed to.

    On connect amqtt 0.12.1 replays retained messages for every filter any client holds, so
    each device would receive every other device's retained state and configuration.
    """

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        holders = self._subscriptions.get(subscription[0], [])
        if any(held.client_id == session.client_id for held, _qos in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)
