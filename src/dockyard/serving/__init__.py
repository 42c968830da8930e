"""Serving: live endpoints, the router in front of them and the batcher behind them."""
