"""Per-tumor realism statistics: real vs synthetic tumors, and profiles fitted to real ones."""
