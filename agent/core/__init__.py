"""The pure decision core: ``(state, event, now, mono) -> (state, actions)``, no I/O, clocks
injected (see :mod:`agent.core.room`)."""
