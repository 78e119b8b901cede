"""The pure decision core: ``(state, event, now) -> (state, actions)``, no I/O, clock injected."""
