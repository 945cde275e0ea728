"""Statistics → figure bytes. Matplotlib ``Figure`` objects (never pyplot's global state),
drawing onto a given ``ax``, pixel grids with PIL; the same numbers give the same bytes. The heatmaps
and violins keep seaborn's geometry but are drawn by matplotlib and numpy alone, so that no
report imports seaborn with its pandas and scipy.stats."""
