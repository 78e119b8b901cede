"""The MQTT link to the district: topics, payload schemas and the paho client."""
