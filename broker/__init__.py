"""diemcau district broker: Mosquitto configuration, provisioning and a local broker runner."""
