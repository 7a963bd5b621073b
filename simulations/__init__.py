"""Omniroute's planning side: queueing formulas (Erlang C and A), staffing, contact-log import,
and the discrete-event simulator that runs the live routing policy."""
