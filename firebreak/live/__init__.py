"""Live streams: sessions that watch, hash and match streams as they arrive."""
