"""The ``edge-inspect`` command line: a thin layer over typed functions.

Each subcommand lives in its own module and is imported only when it runs, so that the
device (no torch) can run ``edge-inspect run`` while ``export`` needs the workstation extra.
"""
