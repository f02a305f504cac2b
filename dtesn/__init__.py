"""dtesn-stream: Server-Sent Event streams from a NumPy Deep Tree Echo State Network."""

__version__ = "0.1.0"
