"""The kernel's port rules as arithmetic (pure): this host's facts, the port budget, a run's own TIME_WAIT.

    facts.py     what the host's sysctls and limits say, as plain values (kernel/sysctl.py reads them)
    budget.py    how many new connections per second a client can sustain, and when ports run out
    timewait.py  which client TIME_WAIT sockets towards the target are the run's own, by their time left

The doctor's rules, the pre-flight and the live line reason over them; none of them does I/O.
"""
