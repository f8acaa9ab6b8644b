"""`synthreid fit`: tune a generation preset to a user's real cameras by attribute descent."""
