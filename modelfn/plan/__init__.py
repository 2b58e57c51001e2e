"""``modelfn plan``: capacity and cost estimates from a traffic profile and measured model figures.

Pure functions (``inputs``, ``queueing``, ``estimate``), a plain-text/JSON report (``report``) and an
optional matplotlib chart (``chart``, imported only for ``--plot``). Every formula and every AWS
limit or price it assumes is written next to the code that uses it.
"""
