"""HTTP views: parse, call one service, serialise."""
