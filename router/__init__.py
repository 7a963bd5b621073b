"""Omniroute's router: the pure routing core (domain, rules, scoring, assignment) and the
live service built around it (engine, gRPC servicers, server, command line)."""
