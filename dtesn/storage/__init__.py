"""Storage: input sources, resume checkpoints, stream fingerprints and uploaded datasets.

Beside `streaming`: it knows bytes, files and engine snapshots, never streams or HTTP.
"""
