"""Pure numerical functions and fixed-size accumulators; no hooks, no figures."""
