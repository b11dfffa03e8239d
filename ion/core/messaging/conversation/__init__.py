"""Conversations: a small declared state machine per exchange of messages.

Protocols: C{rpc} (request -> inform_result | failure), C{request} (request ->
agree | refuse, then inform_result | failure), C{generic} (any performative, open
until idle), and C{none} (a one-off message, no conversation object).
"""

from ion.core.messaging.conversation.core import (
    PROTOCOL_MACHINES,
    Conversation,
    ConversationCore,
    new_conversation,
)

__all__ = ["PROTOCOL_MACHINES", "Conversation", "ConversationCore", "new_conversation"]
