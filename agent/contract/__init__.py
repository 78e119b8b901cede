"""The MQTT contract 2.0 as code: the messages a room publishes and the events it records."""
