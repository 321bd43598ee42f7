"""The error every layer raises for bad user input; its own module so that any file can import it."""


class InputError(ValueError):
    """Bad user input (prompt, layer, neuron, target, subject): the message says what is allowed."""
