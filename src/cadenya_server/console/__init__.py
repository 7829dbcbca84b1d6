"""The admin console at /console: a Preact app built from console/ at the repository root."""
