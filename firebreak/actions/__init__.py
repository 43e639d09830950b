"""Actions on verdicts: signed webhooks, and cutting live streams."""
