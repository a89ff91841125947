"""graftlm: teach a small language model new knowledge and skills with the LAB method."""

__version__ = "0.1.0"
