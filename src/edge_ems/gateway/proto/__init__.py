"""Generated gateway protocol modules; see README.md for how they are made."""
