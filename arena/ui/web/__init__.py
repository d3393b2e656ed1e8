"""The Gradio web app: Arena, Leaderboard and Environment tabs over the same core as the CLI."""
