"""Feature and tile server (OGC API - Features, vector tiles, H3 heatmaps): built in the tile-server issue."""
