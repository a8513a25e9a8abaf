"""Errors every layer may raise and the API layer knows how to answer (core.api_errors)."""


class StateConflict(Exception):
    """An action the current state of an object refuses; str() is a sentence for the user.
    Answered 409 by the API; apps subclass it (training.states.IllegalTransition)."""
