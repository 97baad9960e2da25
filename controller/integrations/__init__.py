"""The warmer's links to other systems: MQTT and Home Assistant discovery."""
