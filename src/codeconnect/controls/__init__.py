"""The owner's controls of a session: end it, reopen it, remove a participant."""
