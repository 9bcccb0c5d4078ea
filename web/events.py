"""Job event push over WebSocket (owned by the push work; placeholder blueprint until it lands)."""
from flask import Blueprint

bp = Blueprint("events", __name__)
