"""What is kept: the SQLite store, blind pairs and votes, and ratings."""
