"""Service tests share the ops tests' station config and the MQTT tests' real mosquitto."""

from tests.edge.mqtt.conftest import broker  # noqa: F401 - re-exported fixture
from tests.edge.ops.conftest import config  # noqa: F401 - re-exported fixture
