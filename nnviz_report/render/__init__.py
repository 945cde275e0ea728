"""Report model → files. Never imports torch: rendering formats, it does not compute."""
