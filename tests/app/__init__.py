"""Tests of the app (ui/, app.py): handlers, gradio_client against a real server, Chromium walks."""
