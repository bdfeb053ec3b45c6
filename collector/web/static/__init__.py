"""Dashboard CSS and JavaScript, served as they are (no build step)."""
