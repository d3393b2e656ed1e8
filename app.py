"""Inference Arena web app: `python app.py` (port from GRADIO_SERVER_PORT, default 7860)."""

from arena.ui.web.app import launch

if __name__ == "__main__":
    launch()
