"""Example prompts, shared by the page, the GPU stages and the benchmarks: free-form questions, and
requests about a pasted passage whose answer repeats much of it (rewrite, edit, summarise), where
speculative decoding by prompt lookup finds its guesses (arena/techniques/speculative.py)."""

from __future__ import annotations

PASSAGE = (
    "The lighthouse stood on a bare rock at the mouth of the harbour. Every evening the keeper climbed "
    "the one hundred and twelve steps of the tower to light the lamp, wound the clockwork that turned "
    "the lens, and wrote the weather in the log. Every morning he climbed them again to put the lamp "
    "out, clean the soot from the glass and trim the wick. In forty years the light failed only once, "
    "on the night of the great storm, when the keeper carried oil up the tower by hand until dawn."
)

FREE_FORM: tuple[str, ...] = (
    "What is the capital of France?",
    "Explain in two sentences why the KV cache speeds up text generation.",
    "Write a haiku about GPUs.",
    "List three differences between fp16 and bf16.",
)

# label -> prompt: the answer copies long runs of the passage
ABOUT_A_PASSAGE: dict[str, str] = {
    "Edit a passage (prompt lookup shines)":
        f"Rewrite the passage below word for word, changing only \"keeper\" to \"guardian\".\n\n{PASSAGE}",
    "Correct a passage (prompt lookup shines)":
        f"Repeat the passage below, putting every sentence in the present tense.\n\n{PASSAGE}",
    "Summarise a passage (prompt lookup helps)":
        f"Summarise the passage below in three sentences, keeping its own words where you can.\n\n{PASSAGE}",
}

EDIT_PROMPT = ABOUT_A_PASSAGE["Edit a passage (prompt lookup shines)"]
STORY = "Write a short story about a lighthouse keeper."  # free-form: nothing to look up
