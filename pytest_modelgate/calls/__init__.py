"""The calls and their measurement: the ``LLM`` client, the measuring transport, the OpenAI
chat-completions protocol, reply contracts, language detection, model endpoints and the catalog,
and the ``CallRecord``/``TestRecord`` each call and test leaves behind. Never imports pytest."""
