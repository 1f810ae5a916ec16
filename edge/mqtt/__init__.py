"""MQTT to the MES: a durable outbox, an at-least-once publisher, availability, commands."""
