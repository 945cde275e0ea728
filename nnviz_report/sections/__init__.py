"""Builders that turn captured statistics into the report model's sections (numbers + figures).

One module per section; each takes plain data from the capture and statistics stages and
returns frozen report-model objects. They never touch hooks and never format for display.
"""
