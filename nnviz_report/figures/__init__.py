"""Statistics → figure bytes. Matplotlib ``Figure`` objects (never pyplot's global state),
seaborn drawing onto a given ``ax``, pixel grids with PIL; the same numbers give the same bytes."""
