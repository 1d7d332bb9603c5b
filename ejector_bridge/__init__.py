"""``ejector-bridge``: a line's decisions in, valve pulses on the plant's PLC out, each at its time."""
