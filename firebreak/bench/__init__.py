"""Real clips, ffmpeg-made variants, and the runs that measure matching on them."""
