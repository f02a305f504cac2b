"""Streaming: SSE framing, heartbeats, compression, pacing, resume. Never imports Flask."""
