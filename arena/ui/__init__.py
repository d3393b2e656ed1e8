"""Front ends over the same core: the command line and the Gradio web app."""
