"""The transport-independent IOS-like CLI engine: command trees declared once per device kind
(`tree`), parsing/help/completion (`parser`), the terminal line discipline (`terminal`), paging
(`pager`), output modifiers (`pipes`), handler context and dialogs (`context`), execution
(`runner`) and the session that ties them together (`session`)."""
from .context import Ask, Confirm, Context, Wait
from .tree import CommandSet, Mode, command

__all__ = ["Ask", "Confirm", "CommandSet", "Context", "Mode", "Wait", "command"]
