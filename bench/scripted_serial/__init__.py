"""pyserial URL handlers for the benches (``serial.protocol_handler_packages``)."""
