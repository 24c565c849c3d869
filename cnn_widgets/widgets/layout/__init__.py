"""Pure layout math of the widgets (pixel boxes, grids, hit tests) and the frozen records they
show: numpy only, no widget library, tested without a browser. One module per widget."""
