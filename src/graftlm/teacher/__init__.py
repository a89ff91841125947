"""Teachers: the protocol, the OpenAI-compatible client, the local model, the call cache, the fake."""

from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Teacher, Usage

__all__ = ["ChatResult", "Completion", "Message", "SamplingOptions", "Teacher", "Usage"]
