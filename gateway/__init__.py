"""The FunASR-protocol WebSocket gateway: an asyncio process of its own, beside the web tier.

Like ``web``, it imports ``core`` only (never pipeline, worker, torch or numpy): files its
clients send become ordinary jobs through ``core.submit.submit_job``.
"""
from gateway.server import Gateway, GatewayConfig, serve

__all__ = ["Gateway", "GatewayConfig", "serve"]
