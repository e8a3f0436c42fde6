"""The Python API (`import twload`): what the command line's commands call too."""
