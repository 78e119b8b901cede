"""Tests for the room's on-disk outbox, systemd integration, clock policy and deploy files."""
