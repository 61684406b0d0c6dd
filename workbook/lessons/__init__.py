"""Lesson scenarios and lab logic that is not a view: the shops, users and prompts the lessons run on."""
