"""The interview state machine: state, runtime context and graph wiring."""
