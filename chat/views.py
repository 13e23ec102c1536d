"""Chat API views. (Stub: replaced by the chat work.)"""

from ragsite.http import json_error


async def search(request):
    """GET /api/search."""
    return json_error("not_implemented", "Not implemented yet.", 501)


async def chat(request):
    """POST /api/chat."""
    return json_error("not_implemented", "Not implemented yet.", 501)


async def feedback(request):
    """POST /api/feedback."""
    return json_error("not_implemented", "Not implemented yet.", 501)
