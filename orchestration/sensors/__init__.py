"""Sensors: the inbox folder (new videos start runs) and the watchdog for runs whose process died."""
